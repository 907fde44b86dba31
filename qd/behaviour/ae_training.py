"""Training of the TAXONS / STAX autoencoder and its retraining schedule.

The network, the frame conversion and :func:`~qd.behaviour.autoencoder.describe` are in
:mod:`qd.behaviour.autoencoder` (whose module docstring describes the whole AE and which
re-exports every name here).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qd.behaviour.autoencoder import (
    IMAGE_SHAPE,
    _check_frames,
    _chunk_size,
    _model_device,
    set_layout,
    to_input,
)

__all__ = [
    "PRECISIONS",
    "AETrainingConfig",
    "TrainingReport",
    "train_autoencoder",
    "training_points",
    "training_schedule",
]

PRECISIONS = ("float32", "bfloat16")
"""Training precisions of :class:`AETrainingConfig` (bfloat16: autocast of the training steps)."""


@dataclass(frozen=True)
class AETrainingConfig:
    """Options of :func:`train_autoencoder` (defaults: the authors' values).

    Attributes:
        lr: Adam learning rate (used only when no optimizer is passed).
        batch_size: training minibatch size.
        max_epochs: most passes over the training split.
        patience: stop once the validation error exceeded the best one so far at this many
            consecutive epochs; None never stops early.
        val_fraction: share of the images held out for validation, in (0, 1); at least one
            image is held out and at least one is trained on.
        seed: seed of the split and the shuffling; None draws one from torch's global RNG.
        eval_batch_size: chunk size of the validation passes (memory and speed only, not
            results); None: 128 on CPU (larger chunks run slower there), 1024 elsewhere.
        restore_best: load the weights of the best validation epoch at the end (the authors
            keep the last epoch's weights).
        channels_last: train and validate in the channels-last layout (faster on CPU; float32
            sums in another order, so not bit-identical to ``False``, the NCHW layout).
        precision: ``float32``, or ``bfloat16`` (autocast of the training steps' forward pass;
            validation stays float32; faster only on CPUs with AVX-512 BF16 or AMX, and on
            GPUs; changes the rounding, hence the learned weights, within the measured
            seed-to-seed spread of the loss curves, see docs/algorithms/taxons.md).
    """

    lr: float = 1e-3
    batch_size: int = 128
    max_epochs: int = 100
    patience: int | None = 4
    val_fraction: float = 0.2
    seed: int | None = None
    eval_batch_size: int | None = None
    restore_best: bool = False
    channels_last: bool = True
    precision: str = "float32"

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("batch_size", "max_epochs", "eval_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass
class TrainingReport:
    """What one :func:`train_autoencoder` call did.

    Attributes:
        epochs: epochs run.
        train_losses: mean per-image training MSE of each epoch (while the weights changed).
        val_losses: mean per-image validation MSE after each epoch.
        initial_val_loss: validation MSE before training.
        best_val_loss: lowest entry of ``val_losses``.
        best_epoch: 1-based epoch of ``best_val_loss``.
        stopped_early: True if the patience rule ended training before ``max_epochs``.
        seconds: wall-clock time of the call.
        n_train: training images (frames, for multi-frame input).
        n_val: validation images.
    """

    epochs: int
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    initial_val_loss: float = math.nan
    best_val_loss: float = math.nan
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    n_train: int = 0
    n_val: int = 0


def _mean_error(
    model: nn.Module,
    images: torch.Tensor,
    index: torch.Tensor,
    batch: int | None,
    channels_last: bool,
) -> float:
    """Mean per-image reconstruction MSE of ``images[index]`` (inference, in chunks)."""
    device = _model_device(model)
    batch = _chunk_size(batch, device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    with torch.inference_mode():
        for start in range(0, index.numel(), batch):
            x = to_input(
                images[index[start : start + batch]], device=device, channels_last=channels_last
            )
            total += F.mse_loss(model(x), x, reduction="sum").double()
    return total.item() / (index.numel() * x[0].numel())


def train_autoencoder(
    model: nn.Module,
    frames: torch.Tensor | np.ndarray,
    config: AETrainingConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    device: torch.device | str | None = None,
) -> TrainingReport:
    """Train an autoencoder on stored frames with a random validation split and early stop.

    Args:
        model: maps float ``[B, 3, 64, 64]`` images to reconstructions of the same shape
            (a :class:`ConvAE`); it is moved to ``device`` and left in eval mode.
        frames: uint8 ``[N, 64, 64, 3]``, or ``[N, F, 64, 64, 3]`` (every frame is an image).
        config: training options (default :class:`AETrainingConfig`).
        generator: CPU generator for the split and shuffling (overrides ``config.seed``).
        optimizer: optimizer over ``model``'s parameters, e.g. one kept across retrainings
            as the authors do; default a fresh ``Adam(lr=config.lr)``.
        device: where to train (default: the model's device). The uint8 frames are copied
            there once; float conversion happens per batch.

    Returns:
        A :class:`TrainingReport`. Results are deterministic for a seed on CPU.

    Raises:
        TypeError / ValueError: frames not uint8 ``[N, 64, 64, 3]``, or too few of them to
            hold out a validation image and train on another.
        FloatingPointError: the training or validation loss became NaN or infinite.
    """
    start_time = time.perf_counter()
    config = config or AETrainingConfig()
    images = _check_frames(frames)
    images = images.reshape(-1, *IMAGE_SHAPE)
    count = images.shape[0]
    n_val = max(1, int(count * config.val_fraction))
    if count < 2 or count - n_val < 1:
        raise ValueError(
            f"need at least 2 images to train the autoencoder (one held out for validation "
            f"with val_fraction={config.val_fraction}), got {count}"
        )
    n_train = count - n_val
    device = torch.device(device) if device is not None else _model_device(model)
    model.to(device)
    images = images.to(device)
    if generator is None:
        seed = config.seed if config.seed is not None else int(torch.randint(2**62, ()))
        generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(count, generator=generator)
    val_index, train_index = perm[:n_val].to(device), perm[n_val:]
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    report = TrainingReport(epochs=0, n_train=n_train, n_val=n_val)
    model.eval()
    set_layout(model, config.channels_last)
    layout = config.channels_last
    report.initial_val_loss = _mean_error(model, images, val_index, config.eval_batch_size, layout)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    best, rises, best_state = math.inf, 0, None
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = train_index[torch.randperm(n_train, generator=generator)].to(device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, n_train, config.batch_size):
            batch = order[start : start + config.batch_size]
            x = to_input(images[batch], channels_last=layout)
            if config.precision == "bfloat16":
                with autocast:
                    out = model(x)
                loss = F.mse_loss(out.float(), x)
            else:
                loss = F.mse_loss(model(x), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * batch.numel()
        model.eval()
        train_loss = total.item() / n_train
        val_loss = _mean_error(model, images, val_index, config.eval_batch_size, layout)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise FloatingPointError(
                f"autoencoder loss is not finite at epoch {epoch} (train {train_loss}, "
                f"validation {val_loss}); lower the learning rate (lr={config.lr}) or check "
                f"the frames"
            )
        report.epochs = epoch
        report.train_losses.append(train_loss)
        report.val_losses.append(val_loss)
        if val_loss <= best:
            best, rises, report.best_epoch = val_loss, 0, epoch
            if config.restore_best:
                best_state = copy.deepcopy(model.state_dict())
        else:
            rises += 1
            if config.patience is not None and rises >= config.patience:
                report.stopped_early = epoch < config.max_epochs
                break
    if best_state is not None and report.best_epoch != report.epochs:
        model.load_state_dict(best_state)
    report.best_val_loss = best
    report.seconds = time.perf_counter() - start_time
    return report


def training_schedule(chunk_index: int) -> bool:
    """Whether to retrain the AE after exploration chunk ``chunk_index`` (1-based).

    True after chunks 1, 3, 6, 10, 15, 21, ... (the triangular numbers: the gap between
    trainings grows by one each time), as in the authors' searcher.
    """
    if chunk_index < 1:
        raise ValueError(f"chunk_index is 1-based, got {chunk_index}")
    root = math.isqrt(8 * chunk_index + 1)
    return root * root == 8 * chunk_index + 1


def training_points(n: int) -> list[int]:
    """The first ``n`` chunk indices after which the AE is retrained: ``[1, 3, 6, 10, ...]``."""
    return [k * (k + 1) // 2 for k in range(1, n + 1)]
