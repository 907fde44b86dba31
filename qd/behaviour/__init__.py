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
    "SOURCES",
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


SOURCES = ("descriptor", "obs")
"""What ``final_obs`` and ``signature`` describe: ``descriptor``, the env's ground-truth
descriptor at each step (the authors' positions: HardMaze robot (x, y) / 600, Curling and
Billiard ball (x, y), redundant-arm end effector; as their ``traj_to_obs``), or ``obs``, the
policy's observation vector."""


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
    """The episode's last position (``source="descriptor"``, the authors' ``last_obs`` on
    ``traj_to_obs``) or last observation vector (``source="obs"``)."""

    name = "final_obs"
    dim: int
    source: str = "descriptor"

    def __post_init__(self) -> None:
        _check_source(self.source, "final_obs")

    @property
    def recordings(self) -> dict:
        return {}

    def describe(self, outcomes: Outcomes) -> torch.Tensor:
        return outcomes.descriptor if self.source == "descriptor" else outcomes.final_obs


@dataclass(frozen=True)
class TrajectorySignatureSpace:
    """Truncated (log-)signature of the episode's trajectory (Paolo's thesis).

    The evaluator records ``samples`` equally spaced points per episode (0: every step) of the
    ``source`` (``descriptor``: the env's ground-truth descriptor, i.e. the authors' positions;
    ``obs``: observation vectors) and :class:`SignatureSpace` turns the ``[B, T, channels]``
    trajectories into descriptors.
    """

    name = "signature"
    transform: SignatureSpace
    channels: int
    samples: int
    episode_length: int
    source: str = "descriptor"

    def __post_init__(self) -> None:
        _check_source(self.source, "signature")

    @property
    def dim(self) -> int:
        return self.transform.dim(self.channels)

    @property
    def recordings(self) -> dict:
        key = "path" if self.source == "descriptor" else "trajectory"
        return {key: self.samples or self.episode_length}

    def describe(self, outcomes: Outcomes) -> torch.Tensor:
        points = outcomes.path if self.source == "descriptor" else outcomes.trajectory
        if points is None:
            key = next(iter(self.recordings))
            raise ValueError(f"the signature space needs recorded trajectories ({key}=...)")
        return self.transform.describe(points.float())


SPACES = ("ground_truth", "final_obs", "signature", "autoencoder")
_SIGNATURE_OPTIONS = {
    "depth": int,
    "log": bool,
    "time": bool,
    "samples": int,
    "basis": str,
    "source": str,
}
_FINAL_OBS_OPTIONS = {"source": str}


def _check_source(source: str, space: str) -> None:
    if source not in SOURCES:
        raise ValueError(
            f"{space} option source must be one of {', '.join(SOURCES)}, got {source!r}"
        )


def _parse_options(space: str, options: str, schema: dict, example: str) -> dict:
    """``key=value,...`` of a built-in space, typed by ``schema``."""
    values: dict = {}
    for item in filter(None, options.split(",")):
        key, _, raw = item.partition("=")
        if key not in schema or not raw:
            raise ValueError(
                f"bad {space} option {item!r}; use key=value with keys "
                f"{', '.join(schema)} (e.g. {example})"
            )
        kind = schema[key]
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{space} option {key} expects true or false, got {raw!r}")
            values[key] = raw.lower() in ("true", "1")
        else:
            try:
                values[key] = kind(raw)
            except ValueError:
                raise ValueError(f"{space} option {key} expects {kind.__name__}") from None
    return values


def _channels(env_spec, source: str) -> int:
    return env_spec.descriptor_size if source == "descriptor" else env_spec.obs_size


def _final_obs_space(options: str, env_spec) -> FinalObservationSpace:
    """``final_obs`` or ``final_obs:source=obs``."""
    values = _parse_options("final_obs", options, _FINAL_OBS_OPTIONS, "final_obs:source=obs")
    source = values.get("source", "descriptor")
    _check_source(source, "final_obs")
    return FinalObservationSpace(_channels(env_spec, source), source)


def _signature_space(options: str, env_spec) -> TrajectorySignatureSpace:
    """``signature`` or ``signature:depth=5,log=true,time=true,samples=200,basis=words,
    source=descriptor``."""
    values = _parse_options("signature", options, _SIGNATURE_OPTIONS, "signature:depth=5,time=true")
    transform = SignatureSpace(
        depth=values.get("depth", 2),
        log=values.get("log", False),
        time_channel=values.get("time", False),
        log_basis=values.get("basis", "words"),
    )
    samples = values.get("samples", 0)
    if samples < 0:
        raise ValueError(f"signature option samples must be >= 0, got {samples}")
    source = values.get("source", "descriptor")
    _check_source(source, "signature")
    return TrajectorySignatureSpace(
        transform, _channels(env_spec, source), samples, env_spec.episode_length, source
    )


def make_space(
    name: str,
    env_spec,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    options: dict | None = None,
):
    """Build a behaviour space by name for an env: ``ground_truth``,
    ``final_obs[:source=descriptor]``,
    ``signature[:depth=2,log=false,time=false,samples=0,basis=words,source=descriptor]``
    (``source=obs``: on the observation vector instead of the env's descriptor, see
    :data:`SOURCES`),
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
    if name == "final_obs" or name.startswith("final_obs:"):
        return _final_obs_space(name.partition(":")[2], env_spec)
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
