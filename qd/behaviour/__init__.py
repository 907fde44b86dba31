"""Behaviour spaces: turn evaluation outcomes into the descriptors the search uses.

A space declares which recordings it needs from the evaluator (``recordings``: keyword
arguments of ``LocalEvaluator.evaluate``) and maps outcomes to descriptors with ``describe``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qd.evaluation import Outcomes


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


SPACES = ("ground_truth", "final_obs")


def make_space(name: str, env_spec) -> GroundTruthSpace | FinalObservationSpace:
    """Build a behaviour space by name for an env."""
    if name == "ground_truth":
        return GroundTruthSpace(env_spec.descriptor_size)
    if name == "final_obs":
        return FinalObservationSpace(env_spec.obs_size)
    raise ValueError(f"unknown behaviour space {name!r}; known: {', '.join(SPACES)}")
