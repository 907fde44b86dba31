"""TAXONS (Paolo et al., ICRA 2020): Novelty Search in a behaviour space an autoencoder learns.

The Novelty Search of :mod:`qd.algorithms.ns` (population 100, 200 offspring, k = 15, 5 random
offspring archived per generation) with the descriptor replaced by the latent code of the
convolutional autoencoder (:class:`qd.behaviour.AutoencoderSpace`) of the episode's final
rendered frame (64 x 64 RGB), and a second score, *surprise* = the AE's reconstruction error.

Each generation the next population is the 100 best of population + offspring by one criterion:

* ``selection="random"`` (TAXONS): novelty or surprise, drawn 50/50 each generation;
* ``"novelty"`` (TAXO-N), ``"surprise"`` (TAXO-S);
* ``"pareto"`` (TAXONS-P): NSGA-II fronts + crowding distance on (novelty, surprise).

The AE is retrained after exploration chunks 1, 3, 6, 10, 15, ... of ``chunk_size``
evaluations (``training_schedule``) on the stored frames of the novelty archive, the population
and the latest offspring (80/20 split, at most 100 epochs, early stop after 4 rises of the
validation error; one Adam kept for the run), and then every stored individual is re-described
from its stored frames (``Archive.reembed``; surprise refreshed too): nothing is re-evaluated,
nothing is dropped. ``train_ae=False`` never trains (NT: the untrained, randomly initialised
AE). Ground-truth descriptors are stored for metrics only and never used by the search.

Frames are stored as uint8 ``[F, 64, 64, 3]`` per individual (12,288 bytes per frame) in the
novelty archive and the population only; the search keeps no other copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from qd.algorithms.ns import NoveltySearch, NSConfig
from qd.algorithms.pareto import nsga2_select
from qd.archive import Archive
from qd.behaviour.autoencoder import AETrainingConfig, training_schedule
from qd.behaviour.learned import AutoencoderSpace
from qd.evaluation import Outcomes

SELECTIONS = ("random", "novelty", "surprise", "pareto")


@dataclass
class TaxonsConfig(NSConfig):
    """TAXONS settings: the NS fields plus the learned space's (papers' defaults).

    Attributes:
        space: ``autoencoder[:latent=10,frames=1]`` (the learned space; multi-frame with
            ``frames=F``).
        selection: population criterion, ``random`` (TAXONS), ``novelty`` (TAXO-N),
            ``surprise`` (TAXO-S) or ``pareto`` (TAXONS-P).
        train_ae: retrain the AE on the schedule (``False``: NT, the untrained AE).
        chunk_size: evaluations per exploration chunk of the training schedule.
        ae_max_epochs: most epochs per training.
        ae_patience: early stop after this many consecutive validation rises.
        ae_batch_size: training minibatch size.
        ae_lr: Adam learning rate.
        ae_device: where the AE trains and encodes (default: the run's device). E.g. a CPU
            run (small-batch rollouts are fastest there) with the AE on ``cuda``.
        ae_channels_last: train and encode in the channels-last layout (faster on CPU; False:
            the NCHW layout, equal to float rounding).
        ae_precision: ``float32``, or ``bfloat16`` (autocast of the AE's training steps;
            faster on CPUs with AVX-512 BF16 or AMX; changes the rounding).
    """

    space: str = "autoencoder"
    selection: str = "random"
    train_ae: bool = True
    chunk_size: int = 1000
    ae_max_epochs: int = 100
    ae_patience: int = 4
    ae_batch_size: int = 128
    ae_lr: float = 1e-3
    ae_device: str | None = None
    ae_channels_last: bool = True
    ae_precision: str = "float32"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if not (self.space == "autoencoder" or self.space.startswith("autoencoder:")):
            raise ValueError(
                f"TAXONS searches the learned space: space must be autoencoder[:latent=..,"
                f"frames=..], got {self.space!r} (use `qd run ns` for other spaces)"
            )
        if self.chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {self.chunk_size}")
        self.training_config()  # validates the ae_* fields

    def training_config(self) -> AETrainingConfig:
        """Options of each AE training."""
        return AETrainingConfig(
            lr=self.ae_lr,
            batch_size=self.ae_batch_size,
            max_epochs=self.ae_max_epochs,
            patience=self.ae_patience,
            channels_last=self.ae_channels_last,
            precision=self.ae_precision,
        )


def select_by(
    selection: str, novelty: torch.Tensor, surprise: torch.Tensor, count: int, coin: bool
) -> tuple[torch.Tensor, str]:
    """Rows kept (best first) and the criterion used; ``coin`` picks for ``random``."""
    if selection == "random":
        selection = "novelty" if coin else "surprise"
    if selection == "pareto":
        objectives = torch.stack([novelty, surprise], 1).double().cpu()
        return nsga2_select(objectives, count).to(novelty.device), "pareto"
    score = novelty if selection == "novelty" else surprise
    return torch.sort(score, descending=True, stable=True).indices[:count], selection


def describe_outcomes(
    space: AutoencoderSpace, outcomes: Outcomes, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(frames, latents, surprise)`` of evaluated episodes, on ``device``."""
    if outcomes.frames is None:
        raise ValueError("a learned space needs the episodes' frames (evaluate with frames=F)")
    frames = outcomes.frames.to(device)
    latents, surprise = space.describe_frames(frames)
    return frames, latents.to(device), surprise.to(device)


class LearnedSpaceMixin:
    """Training schedule, retraining and re-encoding shared by TAXONS and STAX.

    Subclasses set ``space``, ``config`` (with the TAXONS fields), ``ae_archives()`` (the
    archives whose frames the AE trains on) and ``_pending_frames`` (latest offspring frames
    not stored anywhere else). After each training, every archive in ``archives`` that stores
    ``frames`` is re-described.
    """

    space: AutoencoderSpace
    learns: bool = True
    """Whether this object trains and checkpoints the space (False for the NS inside STAX)."""

    def _init_learning(self) -> None:
        self.explore_evaluations = 0
        self.explore_chunks = 0
        self.ae_time = 0.0
        self.reembed_time = 0.0
        self.last_training: dict = {}
        self.space.channels_last = self.config.ae_channels_last
        self._pending_frames = torch.zeros(0, *self.space.frame_shape, dtype=torch.uint8)

    def ae_archives(self) -> list[Archive]:
        """The archives whose frames the AE trains on."""
        raise NotImplementedError

    def _count_exploration(self, count: int) -> dict:
        """Advance the schedule by ``count`` exploration evaluations; train when it says."""
        self.explore_evaluations += count
        info: dict = {}
        while self.explore_evaluations >= (self.explore_chunks + 1) * self.config.chunk_size:
            self.explore_chunks += 1
            if self.config.train_ae and training_schedule(self.explore_chunks):
                info = self.retrain()
        return info

    def training_frames(self) -> torch.Tensor:
        parts = [a.field("frames") for a in self.ae_archives() if len(a)]
        if len(self._pending_frames):
            parts.append(self._pending_frames.to(parts[0].device if parts else "cpu"))
        return torch.cat([p.cpu() for p in parts])

    def retrain(self) -> dict:
        """Train the AE on every stored frame, then re-describe every stored individual."""
        t0 = time.perf_counter()
        report = self.space.fit(self.training_frames(), self.config.training_config())
        t1 = time.perf_counter()
        for archive in self.archives.values():  # every stored individual, in every archive
            if len(archive) and "frames" in archive.schema:
                latents, surprise = self.space.describe_frames(archive.field("frames"))
                archive.reembed(lambda _data, z=latents: z)
                archive.update_field("surprise", surprise)
        t2 = time.perf_counter()
        self.ae_time += t1 - t0
        self.reembed_time += t2 - t1
        self.last_training = {
            "ae_training": self.space.trainings,
            "ae_epochs": report.epochs,
            "ae_train_loss": report.train_losses[-1] if report.train_losses else None,
            "ae_val_loss": report.val_losses[-1] if report.val_losses else None,
            "ae_initial_val_loss": report.initial_val_loss,
            "ae_images": report.n_train + report.n_val,
            "ae_training_time_s": t1 - t0,
            "reembed_time_s": t2 - t1,
        }
        return dict(self.last_training)

    def learning_metrics(self) -> dict:
        return {
            "ae_trainings": self.space.trainings,
            "ae_time_s": self.ae_time,
            "reembed_total_time_s": self.reembed_time,
        }

    def state_dict(self) -> dict:
        """The base algorithm's state plus the space, schedule and timings (if ``learns``)."""
        state = super().state_dict()
        if self.learns:
            state["tensors"].update(
                {f"space.{k}": v for k, v in self.space.state_tensors().items()}
            )
            state["tensors"]["pending_frames"] = self._pending_frames.cpu()
            state["meta"]["learning"] = {
                "explore_evaluations": self.explore_evaluations,
                "explore_chunks": self.explore_chunks,
                "ae_time": self.ae_time,
                "reembed_time": self.reembed_time,
            }
        return state

    def load_state_dict(self, state: dict, archives: dict[str, Archive]) -> None:
        super().load_state_dict(state, archives)
        if not self.learns:
            return
        tensors, meta = state["tensors"], state["meta"]["learning"]
        self.space.load_state_tensors(
            {k[6:]: v for k, v in tensors.items() if k.startswith("space.")}
        )
        self._pending_frames = tensors["pending_frames"].clone()
        self.explore_evaluations = int(meta["explore_evaluations"])
        self.explore_chunks = int(meta["explore_chunks"])
        self.ae_time = float(meta["ae_time"])
        self.reembed_time = float(meta["reembed_time"])


class Taxons(LearnedSpaceMixin, NoveltySearch):
    """Ask/tell TAXONS and its variants (see the module docstring).

    Args:
        config: settings.
        genome_size: genes per genome.
        measure_dim: descriptor size (``space.dim``).
        env_spec: the env spec dict.
        space: the :class:`AutoencoderSpace` (built by the run from ``config.space``).
        device: where archives live.
        seed: seed of everything random.
    """

    name = "taxons"
    needs_space = True
    describes_itself = True  # tell computes (latents, surprise) from the frames in one pass

    def __init__(
        self,
        config: TaxonsConfig,
        *,
        genome_size: int,
        measure_dim: int,
        env_spec: dict,
        space: AutoencoderSpace,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if not isinstance(space, AutoencoderSpace):
            raise TypeError("TAXONS needs an AutoencoderSpace")
        self.space = space
        super().__init__(
            config,
            genome_size=genome_size,
            measure_dim=measure_dim,
            env_spec=env_spec,
            device=device,
            seed=seed,
            stored_fields={
                "frames": (space.frame_shape, torch.uint8),
                "surprise": ((), torch.float32),
            },
        )
        self._init_learning()
        self._criterion = ""
        self._union_size = 0  # population + offspring of the latest generation

    def ae_archives(self) -> list[Archive]:
        return [self.archive, self.population]

    def tell(
        self,
        genomes: torch.Tensor,
        outcomes: Outcomes,
        descriptors: torch.Tensor | None = None,
    ) -> dict:
        """Describe the offspring from their frames, run the NS step, train on schedule."""
        frames, latents, surprise = describe_outcomes(self.space, outcomes, self.device)
        info = self.tell_described(genomes, outcomes, frames, latents, surprise)
        info.update(self._count_exploration(len(genomes)))
        info.update(self.learning_metrics())
        return info

    def tell_described(
        self,
        genomes: torch.Tensor,
        outcomes: Outcomes,
        frames: torch.Tensor,
        latents: torch.Tensor,
        surprise: torch.Tensor,
        *,
        extra_reference: torch.Tensor | None = None,
    ) -> dict:
        """The NS step on already described offspring (STAX calls this for its NS part)."""
        info = super().tell(
            genomes,
            outcomes,
            latents,
            extras={"frames": frames, "surprise": surprise},
            extra_reference=extra_reference,
        )
        kept = self.last_selection
        # offspring not kept in the population are stored nowhere else: keep them for training
        n_old = self._union_size - len(genomes)
        selected = kept[kept >= n_old] - n_old
        dropped = torch.ones(len(genomes), dtype=torch.bool, device=frames.device)
        dropped[selected.to(frames.device)] = False
        self._pending_frames = frames[dropped].cpu()
        info.update(
            {
                "selection": self._criterion,
                "surprise_mean": float(surprise.mean()),
                "surprise_max": float(surprise.max()),
                "surprise_min": float(surprise.min()),
            }
        )
        return info

    def _select_survivors(
        self, union: dict[str, torch.Tensor], novelty: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        self._union_size = len(novelty)
        coin = bool(torch.rand((), generator=self._generator) < 0.5)
        order, self._criterion = select_by(
            self.config.selection, novelty, union["surprise"], self.config.pop_size, coin
        )
        return order, {}
