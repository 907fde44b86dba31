"""Learned behaviour space of TAXONS / STAX: a convolutional autoencoder on rendered frames.

TAXONS (Paolo et al., ICRA 2020, arXiv 1909.05508) and STAX (arXiv 2111.01919) describe an
individual by the latent code of an autoencoder (AE) applied to the final rendered image of its
episode, and measure its *surprise* as the AE's reconstruction MSE of that image. The AE is
retrained on the images of the stored individuals as the search goes on, after which every
stored individual is re-encoded from its stored image.

Architecture (STAX version, as in the authors' ``core/auto_encoders/ae.py`` of GPaolo/STAX;
every convolution has kernel 4, stride 2, padding 1, with biases, PyTorch default init):

* encoder: ``[B, 3, 64, 64]`` -> Conv 3->32 (32x32) -> Conv 32->64 (16x16) -> Conv 64->32 (8x8)
  -> Conv 32->16 (4x4), SELU after each -> flatten to ``16 * 4 * 4 = 256`` features -> Linear
  256->latent, SELU (the latent code has a SELU activation);
* decoder: Linear latent->256, SELU -> ``[B, 16, 4, 4]`` -> transposed convs 16->32->64->32->3
  (4 -> 8 -> 16 -> 32 -> 64), SELU after each but the last, ReLU output;
* loss: per-image MSE; Adam, lr 1e-3, batch 128 (the authors' defaults); 156,189 parameters for
  a 10-dimensional latent.

Training follows the authors' searcher: the images are split 80/20 at random into training and
validation sets, each epoch goes once over the shuffled training set, and training stops after
at most 100 epochs or once the validation error has exceeded the best one seen so far at 4
consecutive epochs. Weights are not rolled back to the best epoch unless
``AETrainingConfig.restore_best`` is set. The authors keep one Adam optimizer for the whole run
(its moments carry over between retrainings): pass the same ``optimizer`` to every
:func:`train_autoencoder` call to do the same; by default each call starts a fresh Adam.
Retraining happens after exploration chunks 1, 3, 6, 10, 15, ... (:func:`training_schedule`).

Frames are stored as ``uint8`` ``[N, 64, 64, 3]`` (what ``env.render`` and
``LocalEvaluator.evaluate(frames=F)`` produce: 12,288 bytes per frame, 123 MB for 10,000
frames) and converted to float ``[B, 3, 64, 64]`` in ``[0, 1]`` one batch at a time
(:func:`to_input`), so training and encoding never hold a float copy of the whole set.
Multi-frame descriptors (``[N, F, 64, 64, 3]``) treat every frame as one image: training uses
all frames, the descriptor is the per-frame latents concatenated in frame order (``[N, F *
latent]``) and the surprise is the sum of the per-frame errors.

Speed (CPU): by default training and encoding run in the channels-last memory layout
(``AETrainingConfig.channels_last`` / ``describe(channels_last=...)``; oneDNN's NHWC kernels),
float32, with the same arithmetic up to the order of float sums (not bit-identical to the
NCHW layout, which stays available as ``channels_last=False``). ``precision="bfloat16"``
trains under bfloat16 autocast (validation, encoding and surprise stay float32): faster on CPUs
with AVX-512 BF16 or AMX, a different rounding, off by default. ``qd bench ae`` measures both
against the NCHW float32 path in one process; measurements are in docs/algorithms/taxons.md.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "FEATURES",
    "IMAGE_SHAPE",
    "PRECISIONS",
    "AETrainingConfig",
    "ConvAE",
    "TrainingReport",
    "describe",
    "set_layout",
    "to_input",
    "train_autoencoder",
    "training_points",
    "training_schedule",
]

IMAGE_SIZE = 64
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 3)
"""Stored frame shape (height, width, RGB), as rendered by the environments."""
FEATURES = 16 * 4 * 4
"""Flattened size of the convolutional encoder's output (16 channels of 4x4)."""

_FRAME_HINT = "expected uint8 frames of shape [N, 64, 64, 3] (or [N, F, 64, 64, 3])"


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1)


def _deconv(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)


def to_input(
    images: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Convert images to the AE's input: float32 ``[B, 3, 64, 64]`` in ``[0, 1]``.

    Args:
        images: uint8 ``[B, 64, 64, 3]`` frames (divided by 255), or float ``[B, 3, 64, 64]``
            images already in ``[0, 1]`` (returned as float32).
        device: where the result goes (default: where ``images`` are). uint8 frames are moved
            before conversion, which transfers 4x fewer bytes.
        channels_last: return the channels-last layout (same values; for uint8 frames, which
            are stored channels-last, one copy instead of a transpose and a copy).

    Raises:
        ValueError: on a wrong shape. TypeError: on a dtype that is neither uint8 nor float.
    """
    images = torch.as_tensor(images)
    if images.dtype == torch.uint8:
        if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(
                f"expected uint8 frames of shape [B, 64, 64, 3], got {tuple(images.shape)}"
            )
        images = images.to(device) if device is not None else images
        if channels_last:  # the permuted view already has channels-last strides
            nchw = images.permute(0, 3, 1, 2)
            return nchw.to(torch.float32, memory_format=torch.channels_last).div_(255.0)
        return images.permute(0, 3, 1, 2).contiguous().to(torch.float32).div_(255.0)
    if images.is_floating_point():
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"expected float images of shape [B, 3, 64, 64] in [0, 1] (or uint8 frames "
                f"[B, 64, 64, 3]), got {tuple(images.shape)}"
            )
        images = images.to(device=device, dtype=torch.float32)
        return images.contiguous(memory_format=_layout(channels_last))
    raise TypeError(
        f"expected uint8 frames [B, 64, 64, 3] or float images [B, 3, 64, 64], "
        f"got dtype {images.dtype}"
    )


def _layout(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def set_layout(model: nn.Module, channels_last: bool) -> None:
    """Put ``model``'s 4-d weights in the channels-last (or the standard NCHW) layout, in place.

    The parameters stay the same objects (an optimizer over them stays valid); only their
    strides change.
    """
    fmt = _layout(channels_last)
    if any(p.ndim == 4 and not p.is_contiguous(memory_format=fmt) for p in model.parameters()):
        model.to(memory_format=fmt)


class ConvAE(nn.Module):
    """Convolutional autoencoder for 64x64 RGB frames (STAX architecture, see module doc).

    Args:
        latent_dim: size of the latent code (the behaviour descriptor of one frame).
        seed: if given, initialise the weights from this seed (global RNG left untouched).
    """

    to_input = staticmethod(to_input)

    def __init__(self, latent_dim: int = 10, *, seed: int | None = None) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = latent_dim
        if seed is None:
            self._build()
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self._build()

    def _build(self) -> None:
        act = nn.SELU
        self.encoder_conv = nn.Sequential(
            _conv(3, 32), act(),  # 64 -> 32
            _conv(32, 64), act(),  # 32 -> 16
            _conv(64, 32), act(),  # 16 -> 8
            _conv(32, 16), act(),  # 8 -> 4
            nn.Flatten(),
        )  # fmt: skip
        self.encoder_fc = nn.Sequential(nn.Linear(FEATURES, self.latent_dim), act())
        self.decoder_fc = nn.Sequential(nn.Linear(self.latent_dim, FEATURES), act())
        self.decoder_conv = nn.Sequential(
            nn.Unflatten(1, (16, 4, 4)),
            _deconv(16, 32), act(),  # 4 -> 8
            _deconv(32, 64), act(),  # 8 -> 16
            _deconv(64, 32), act(),  # 16 -> 32
            _deconv(32, 3), nn.ReLU(),  # 32 -> 64
        )  # fmt: skip

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.parameters()).device

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Convolutional features ``[B, 256]`` (before the latent layer)."""
        return self.encoder_conv(to_input(images, device=self.device))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Latent codes ``[B, latent_dim]`` of uint8 ``[B, 64, 64, 3]`` or float images."""
        return self.encoder_fc(self.features(images))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Reconstructed images ``[B, 3, 64, 64]`` (non-negative) from ``[B, latent_dim]``."""
        return self.decoder_conv(self.decoder_fc(latent))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``[B, 3, 64, 64]`` of uint8 ``[B, 64, 64, 3]`` or float images."""
        return self.decode(self.encode(images))


def _check_frames(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Validate uint8 ``[N, 64, 64, 3]`` or ``[N, F, 64, 64, 3]`` frames."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8:
        raise TypeError(f"{_FRAME_HINT}, got dtype {frames.dtype}")
    if frames.ndim not in (4, 5) or tuple(frames.shape[-3:]) != IMAGE_SHAPE:
        raise ValueError(f"{_FRAME_HINT}, got shape {tuple(frames.shape)}")
    return frames


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _chunk_size(batch: int | None, device: torch.device) -> int:
    """Inference chunk size: ``batch``, or 128 on CPU (faster than larger ones) and 1024 else."""
    if batch is None:
        return 128 if device.type == "cpu" else 1024
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    return batch


def describe(
    model: ConvAE,
    frames: torch.Tensor | np.ndarray,
    *,
    batch: int | None = None,
    channels_last: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Behaviour descriptors and surprise of stored frames.

    Args:
        model: a (trained or untrained) :class:`ConvAE`.
        frames: uint8 ``[N, 64, 64, 3]``, or ``[N, F, 64, 64, 3]`` for F frames per episode.
        batch: images encoded at once (memory and speed only; results agree to float
            rounding); None: 128 on CPU, where larger chunks run slower, 1024 elsewhere.
        channels_last: encode in the channels-last layout (sets the model's layout); False:
            NCHW (results agree to float rounding).

    Returns:
        ``(latents, surprise)`` on the frames' device: float32 ``[N, latent]`` and ``[N]``
        (per-image reconstruction MSE); for F frames, ``[N, F * latent]`` (frame-major
        concatenation) and ``[N]`` (sum of the F per-frame errors).
    """
    frames = _check_frames(frames)
    device = _model_device(model)
    batch = _chunk_size(batch, device)
    n = frames.shape[0]
    n_frames = frames.shape[1] if frames.ndim == 5 else 1
    images = frames.reshape(-1, *IMAGE_SHAPE)
    latents, errors = [], []
    was_training = model.training
    model.eval()
    set_layout(model, channels_last)
    try:
        with torch.inference_mode():
            for start in range(0, images.shape[0], batch):
                x = to_input(
                    images[start : start + batch], device=device, channels_last=channels_last
                )
                z = model.encode(x)
                err = (model.decode(z) - x).square_().mean(dim=(1, 2, 3))
                latents.append(z.to(frames.device))
                errors.append(err.to(frames.device))
    finally:
        model.train(was_training)
    if not latents:
        empty = torch.empty(0, device=frames.device)
        return empty.reshape(0, n_frames * model.latent_dim), empty
    latent = torch.cat(latents).reshape(n, n_frames * model.latent_dim)
    surprise = torch.cat(errors).reshape(n, n_frames).sum(dim=1)
    return latent, surprise


# training lives in ae_training (imported last: it uses the names above)
from qd.behaviour.ae_training import (  # noqa: E402
    PRECISIONS,
    AETrainingConfig,
    TrainingReport,
    train_autoencoder,
    training_points,
    training_schedule,
)
