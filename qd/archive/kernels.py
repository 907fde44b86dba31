"""RBF kernels over sets of descriptors (DvD's determinant diversity)."""

from __future__ import annotations

import torch


def rbf_kernel(descriptors: torch.Tensor, *, lengthscale: float = 1.0) -> torch.Tensor:
    """``K_ij = exp(-||x_i - x_j||^2 / (2 l^2))`` over the rows of ``descriptors [..., M, d]``
    (leading dimensions are batches of independent sets)."""
    if not torch.isfinite(descriptors).all():
        raise ValueError("descriptors (embeddings) contain NaN or infinite values")
    diff = descriptors.unsqueeze(-2) - descriptors.unsqueeze(-3)
    return torch.exp(-diff.pow(2).sum(-1) / (2 * lengthscale**2))


def rbf_log_det(
    descriptors: torch.Tensor, *, lengthscale: float = 1.0, jitter: float = 1e-6
) -> torch.Tensor:
    """Log-determinant of the RBF kernel matrix of each set ``[..., M, d]`` (DvD's diversity).

    Computed with a Cholesky factorisation of ``K + jitter * I``; where it fails, the jitter
    grows tenfold (up to 6 times) for those sets only, so duplicate rows give a very negative,
    finite value. Differentiable with respect to ``descriptors``. Returns ``[...]``.
    """
    kernel = rbf_kernel(descriptors, lengthscale=lengthscale)
    eye = torch.eye(kernel.shape[-1], dtype=kernel.dtype, device=kernel.device)
    chol, info = torch.linalg.cholesky_ex(kernel + jitter * eye)
    for attempt in range(1, 7):
        failed = info != 0
        if not bool(failed.any()):
            break
        retry, retry_info = torch.linalg.cholesky_ex(kernel + jitter * (10**attempt) * eye)
        chol = torch.where(failed[..., None, None], retry, chol)
        info = torch.where(failed, retry_info, info)
    if bool((info != 0).any()):
        raise ValueError("kernel matrix is not positive definite even with jitter")
    return 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
