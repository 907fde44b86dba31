"""Behaviour spaces: turn evaluation outcomes into the descriptors the search uses.

A space declares which recordings it needs from the evaluator (``recordings``: keyword
arguments of ``LocalEvaluator.evaluate``) and maps outcomes to descriptors with ``describe``.
Trajectory signatures (``qd.behaviour.signatures``) map recorded trajectories ``[B, T, d]`` to
descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qd.behaviour.custom import build_space, is_space_reference
from qd.behaviour.learned import AutoencoderSpace, parse_autoencoder_options
from qd.behaviour.signatures import (
    SignatureSpace,
    logsignature,
    logsignature_size,
    signature,
    signature_size,
)
from qd.evaluation import Outcomes

__all__ = [
    "SPACES",
    "AutoencoderSpace",
    "FinalObservationSpace",
    "GroundTruthSpace",
    "SignatureSpace",
    "TrajectorySignatureSpace",
    "logsignature",
    "logsignature_size",
    "make_space",
    "signature",
    "signature_size",
]


@dataclass(frozen=True)
class GroundTruthSpace:
    """The environment's own descriptor (e.g. final (x, y) in HardMaze)."""

    name = "ground_truth"
    dim: int

    @property
    def recordings(self) -> dict:
        return {}

    def describe(self, outcomes: Outcomes) -> torch.Tensor:
        return outcomes.descriptor


@dataclass(frozen=True)
class FinalObservationSpace:
    """The last observation of the episode."""

    name = "final_obs"
    dim: int

    @property
    def recordings(self) -> dict:
        return {}

    def describe(self, outcomes: Outcomes) -> torch.Tensor:
        return outcomes.final_obs


@dataclass(frozen=True)
class TrajectorySignatureSpace:
    """Truncated (log-)signature of the episode's observations (Paolo's thesis).

    The evaluator records ``samples`` equally spaced observations per episode (0: every step)
    and :class:`SignatureSpace` turns the ``[B, T, obs]`` trajectories into descriptors.
    """

    name = "signature"
    transform: SignatureSpace
    channels: int
    samples: int
    episode_length: int

    @property
    def dim(self) -> int:
        return self.transform.dim(self.channels)

    @property
    def recordings(self) -> dict:
        return {"trajectory": self.samples or self.episode_length}

    def describe(self, outcomes: Outcomes) -> torch.Tensor:
        if outcomes.trajectory is None:
            raise ValueError("the signature space needs recorded trajectories (trajectory=...)")
        return self.transform.describe(outcomes.trajectory.float())


SPACES = ("ground_truth", "final_obs", "signature", "autoencoder")
_SIGNATURE_OPTIONS = {"depth": int, "log": bool, "time": bool, "samples": int, "basis": str}


def _signature_space(options: str, env_spec) -> TrajectorySignatureSpace:
    """``signature`` or ``signature:depth=5,log=true,time=true,samples=200,basis=words``."""
    values: dict = {}
    for item in filter(None, options.split(",")):
        key, _, raw = item.partition("=")
        if key not in _SIGNATURE_OPTIONS or not raw:
            raise ValueError(
                f"bad signature option {item!r}; use key=value with keys "
                f"{', '.join(_SIGNATURE_OPTIONS)} (e.g. signature:depth=5,time=true)"
            )
        kind = _SIGNATURE_OPTIONS[key]
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"signature option {key} expects true or false, got {raw!r}")
            values[key] = raw.lower() in ("true", "1")
        else:
            try:
                values[key] = kind(raw)
            except ValueError:
                raise ValueError(f"signature option {key} expects {kind.__name__}") from None
    transform = SignatureSpace(
        depth=values.get("depth", 2),
        log=values.get("log", False),
        time_channel=values.get("time", False),
        log_basis=values.get("basis", "words"),
    )
    samples = values.get("samples", 0)
    if samples < 0:
        raise ValueError(f"signature option samples must be >= 0, got {samples}")
    return TrajectorySignatureSpace(transform, env_spec.obs_size, samples, env_spec.episode_length)


def make_space(
    name: str,
    env_spec,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    options: dict | None = None,
):
    """Build a behaviour space by name for an env: ``ground_truth``, ``final_obs``,
    ``signature[:depth=2,log=false,time=false,samples=0,basis=words]``,
    ``autoencoder[:latent=10,frames=1]`` (the TAXONS/STAX AE on rendered frames; ``seed`` and
    ``device`` are its initial weights' seed and where it lives; other spaces ignore them), or
    your own ``package.module:Class`` built with keyword ``options`` (see
    :mod:`qd.behaviour.custom`)."""
    if is_space_reference(name):
        return build_space(name, env_spec, options=options or {}, seed=seed, device=device)
    if options:
        raise ValueError(
            f"space options {sorted(options)} apply to module:Class spaces only, not {name!r}"
        )
    if name == "ground_truth":
        return GroundTruthSpace(env_spec.descriptor_size)
    if name == "final_obs":
        return FinalObservationSpace(env_spec.obs_size)
    if name == "signature" or name.startswith("signature:"):
        return _signature_space(name.partition(":")[2], env_spec)
    if name == "autoencoder" or name.startswith("autoencoder:"):
        if getattr(env_spec, "image_size", 0) != 64:
            raise ValueError(
                f"the autoencoder space needs 64 x 64 renders; env {env_spec.name!r} renders "
                f"{getattr(env_spec, 'image_size', None)}"
            )
        options = parse_autoencoder_options(name.partition(":")[2])
        return AutoencoderSpace(**options, seed=seed, device=device)
    raise ValueError(
        f"unknown behaviour space {name!r}; known: {', '.join(SPACES)}, or your own "
        "package.module:Class"
    )
