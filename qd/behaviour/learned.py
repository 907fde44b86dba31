"""A learned behaviour space: the TAXONS / STAX autoencoder as a stateful space.

:class:`AutoencoderSpace` asks the evaluator for ``frames`` equally spaced renders per episode
(1: the final frame), describes an episode by the AE's latent code of those frames (frames
concatenated) and measures its *surprise* (reconstruction error, summed over frames). It owns
the :class:`~qd.behaviour.autoencoder.ConvAE`, one Adam kept across retrainings (as the authors
do) and the generator of the training splits, so a run checkpoints and resumes it exactly
(:meth:`state_tensors` / :meth:`load_state_tensors`).

Algorithms that learn the space (TAXONS, STAX) store each individual's uint8 frames next to it
in their archives, call :meth:`fit` on the stored frames on the training schedule, and then
re-describe every stored individual with :meth:`describe_frames` through ``Archive.reembed``.
"""

from __future__ import annotations

import torch

from qd.behaviour.autoencoder import (
    IMAGE_SHAPE,
    AETrainingConfig,
    ConvAE,
    TrainingReport,
    describe,
    train_autoencoder,
)
from qd.evaluation import Outcomes

__all__ = ["AutoencoderSpace"]


class AutoencoderSpace:
    """Latent code of a convolutional AE on an episode's rendered frames.

    Args:
        latent_dim: latent size per frame.
        frames: frames per episode (1: the final frame; F > 1: F equally spaced frames, the
            last one final).
        device: where the AE lives and trains.
        seed: seed of the AE's initial weights and of the training splits.
        lr: learning rate of the Adam kept across retrainings.
        channels_last: encode in the channels-last layout (faster on CPU; False: NCHW, equal
            to float rounding). Training takes its layout from its ``AETrainingConfig``.
    """

    name = "autoencoder"

    def __init__(
        self,
        *,
        latent_dim: int = 10,
        frames: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
        lr: float = 1e-3,
        channels_last: bool = True,
    ) -> None:
        if frames < 1:
            raise ValueError(f"the autoencoder space needs frames >= 1, got {frames}")
        self.latent_dim = int(latent_dim)
        self.frames = int(frames)
        self.device = torch.device(device)
        self.model = ConvAE(self.latent_dim, seed=seed).to(self.device)
        self.lr = lr
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(int(seed) + 7)
        self.trainings = 0
        self.channels_last = bool(channels_last)

    @property
    def dim(self) -> int:
        """Descriptor size: ``frames * latent_dim``."""
        return self.frames * self.latent_dim

    @property
    def recordings(self) -> dict:
        return {"frames": self.frames}

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one individual's stored frames: ``(F, 64, 64, 3)``."""
        return (self.frames, *IMAGE_SHAPE)

    def _frames_of(self, outcomes: Outcomes) -> torch.Tensor:
        if outcomes.frames is None:
            raise ValueError(
                "the autoencoder space needs rendered frames (evaluate with frames=...)"
            )
        return outcomes.frames

    def describe_frames(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(descriptors [N, dim], surprise [N])`` of uint8 frames ``[N, F, 64, 64, 3]``."""
        if frames.ndim != 5 or frames.shape[1] != self.frames:
            raise ValueError(
                f"expected frames [N, {self.frames}, 64, 64, 3], got {list(frames.shape)}"
            )
        return describe(self.model, frames, channels_last=self.channels_last)

    def describe(self, outcomes: Outcomes) -> torch.Tensor:
        """Latent descriptors of the episodes' frames."""
        return self.describe_frames(self._frames_of(outcomes))[0]

    def fit(self, frames: torch.Tensor, config: AETrainingConfig | None = None) -> TrainingReport:
        """Train the AE on stored frames ``[N, F, 64, 64, 3]`` (every frame one image)."""
        report = train_autoencoder(
            self.model,
            frames,
            config,
            generator=self.generator,
            optimizer=self.optimizer,
            device=self.device,
        )
        self.trainings += 1
        return report

    # -- state ---------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Weights, the Adam's moments and the split generator, as named (contiguous) tensors."""
        tensors = {
            f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()
        }
        for i, param in enumerate(self.model.parameters()):
            st = self.optimizer.state.get(param)
            if st:
                tensors[f"adam.{i}.exp_avg"] = st["exp_avg"].cpu().contiguous()
                tensors[f"adam.{i}.exp_avg_sq"] = st["exp_avg_sq"].cpu().contiguous()
                tensors[f"adam.{i}.step"] = torch.as_tensor(st["step"]).float().reshape(1)
        tensors["generator"] = self.generator.get_state()
        tensors["trainings"] = torch.tensor([self.trainings])
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore from :meth:`state_tensors`."""
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(weights)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        for i, param in enumerate(self.model.parameters()):
            if f"adam.{i}.exp_avg" in tensors:
                self.optimizer.state[param] = {
                    "step": tensors[f"adam.{i}.step"].reshape(()).clone(),
                    "exp_avg": tensors[f"adam.{i}.exp_avg"].to(self.device).clone(),
                    "exp_avg_sq": tensors[f"adam.{i}.exp_avg_sq"].to(self.device).clone(),
                }
        self.generator.set_state(tensors["generator"])
        self.trainings = int(tensors["trainings"][0])


def parse_autoencoder_options(options: str) -> dict:
    """``latent=10,frames=1`` -> keyword options of :class:`AutoencoderSpace`."""
    keys = {"latent": "latent_dim", "frames": "frames"}
    values: dict = {}
    for item in filter(None, options.split(",")):
        key, _, raw = item.partition("=")
        if key not in keys or not raw.isdigit():
            raise ValueError(
                f"bad autoencoder option {item!r}; use latent=INT and/or frames=INT "
                f"(e.g. autoencoder:latent=10,frames=3)"
            )
        values[keys[key]] = int(raw)
    return values
