"""Re-evaluate stored individuals and check that they still do what the archive says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from qd.archive import Archive
from qd.evaluation import LocalEvaluator
from qd.policies import BatchedMLP, SereneMLP, serene_sizes


@dataclass
class Replay:
    """Result of replaying one stored individual."""

    index: int
    stored: dict
    replayed: dict
    path: np.ndarray  # [P, d] ground-truth descriptors along the episode
    frames: np.ndarray | None  # [F, H, W, 3]

    @property
    def matches(self) -> bool:
        """True when fitness, reward area and ground-truth descriptor are reproduced exactly."""
        return (
            self.stored["fitness"] == self.replayed["fitness"]
            and self.stored["reward_area"] == self.replayed["reward_area"]
            and self.stored["ground_truth"] == self.replayed["ground_truth"]
        )


def choose_index(archive: Archive, *, index: int | None, best: bool, area: int | None) -> int:
    """Row to replay: ``index``, or the best objective (optionally inside reward ``area``)."""
    if len(archive) == 0:
        raise ValueError("the archive is empty")
    if index is not None:
        if not 0 <= index < len(archive):
            raise ValueError(f"--index {index} out of range: the archive has {len(archive)} rows")
        return index
    if not best:
        raise ValueError("give --index I or --best")
    objective = archive.objectives.clone()
    if area is not None:
        inside = archive.field("reward_area") == area
        if not inside.any():
            raise ValueError(f"no stored individual ended in reward area {area}")
        objective[~inside] = -float("inf")
    return int(objective.argmax())


def replay(
    archive: Archive,
    env,
    index: int,
    *,
    seed: int = 0,
    device: str = "cpu",
    path_points: int = 200,
    frames: int = 0,
    hidden: list[int] | None = None,
    policy: BatchedMLP | None = None,
) -> Replay:
    """Re-evaluate row ``index`` of ``archive`` in ``env`` (same seed and policy as the run)."""
    if policy is None:  # the SERENE-family policy of the run (``qd.algorithms.policy_for``)
        sizes = serene_sizes(env.spec.obs_size, env.spec.action_size, hidden, env=env.spec.name)
        policy = SereneMLP(sizes)
    evaluator = LocalEvaluator(env, policy, device=device, seed=seed)
    genome = archive.genomes[index : index + 1].to(torch.float32)
    out = evaluator.evaluate(genome, path=path_points, frames=frames)
    stored = {
        "fitness": float(archive.objectives[index]),
        "reward_area": int(archive.field("reward_area")[index]),
        "ground_truth": archive.field("ground_truth")[index].cpu().tolist(),
    }
    replayed = {
        "fitness": float(out.fitness[0]),
        "reward_area": int(out.reward_area[0]),
        "ground_truth": out.descriptor[0].cpu().tolist(),
    }
    return Replay(
        index=index,
        stored=stored,
        replayed=replayed,
        path=out.path[0].cpu().numpy(),
        frames=None if out.frames is None else out.frames[0].cpu().numpy(),
    )


def write_gif(frames: np.ndarray, path: str | Path, *, fps: int = 10, scale: int = 4) -> Path:
    """Save ``[F, H, W, 3]`` uint8 frames as an animated GIF (pixels enlarged ``scale`` times)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [
        Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)
        for f in frames
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    return path
