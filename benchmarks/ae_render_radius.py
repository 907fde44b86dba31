"""How much robot position the TAXONS autoencoder learns from HardMaze frames, by render radius.

For each ``render_radius`` (world units; the robot's true radius is 10, the authors draw 6) and
``--style`` (``authors``: white maze, red goals, blue robot; ``legacy``): render the robot at
``--frames`` random free positions, train the AE exactly as TAXONS does (80/20 split, at most
100 epochs, early stop after 4 rises), encode held-out frames and fit a linear map from latents
to the true (x, y); report its R^2 on held-out positions, the AE's validation loss and the loss
of a reconstruction that leaves the robot out (the mean frame's error). Prints JSON lines.

    python benchmarks/ae_render_radius.py --radii 6 30 90 --style authors --device cuda
"""

from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np
import torch
from sklearn.linear_model import LinearRegression

from envs.hardmaze import WORLD_SIZE, HardMaze
from qd.behaviour.autoencoder import AETrainingConfig, ConvAE, describe, train_autoencoder


def free_positions(env: HardMaze, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` uniformly drawn (x, y) whose pixel and 3-pixel neighbourhood hold no wall."""
    walls = torch.from_numpy(env.obstacles)
    blocked = torch.nn.functional.max_pool2d(walls[None, None].float(), 7, 1, 3)[0, 0] > 0
    found = []
    while sum(len(f) for f in found) < count:
        xy = torch.rand(count, 2, generator=generator) * WORLD_SIZE
        px = (xy * env.scale).long().clamp(0, env.size_px - 1)
        found.append(xy[~blocked[px[:, 1], px[:, 0]]])
    return torch.cat(found)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radii", type=float, nargs="+", default=[6, 30, 90])
    parser.add_argument("--style", choices=("authors", "legacy"), default="authors")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    for radius in args.radii:
        env = HardMaze(render_style=args.style, render_radius=radius)
        xy = free_positions(env, args.frames, generator)
        frames = env.render(SimpleNamespace(x=xy[:, 0], y=xy[:, 1]))
        n_test = args.frames // 5
        train, test = frames[n_test:], frames[:n_test]
        model = ConvAE(10, seed=args.seed).to(args.device)
        untrained = LinearRegression().fit(describe(model, train)[0].cpu().numpy(), xy[n_test:])
        r2_untrained = untrained.score(describe(model, test)[0].cpu().numpy(), xy[:n_test])
        start = time.perf_counter()
        report = train_autoencoder(
            model, train, AETrainingConfig(max_epochs=args.max_epochs, seed=args.seed)
        )
        seconds = time.perf_counter() - start
        z_train = describe(model, train)[0].cpu().numpy()
        z_test, surprise = describe(model, test)
        fit = LinearRegression().fit(z_train, xy[n_test:].numpy())
        mean_frame = train.float().mean(0) / 255
        blind = float(((test.float() / 255 - mean_frame) ** 2).mean())
        print(
            json.dumps(
                {
                    "render_style": args.style,
                    "render_radius": radius,
                    "epochs": report.epochs,
                    "val_loss": report.val_losses[-1],
                    "mean_frame_loss": blind,
                    "position_r2": float(fit.score(z_test.cpu().numpy(), xy[:n_test].numpy())),
                    "position_r2_untrained": float(r2_untrained),
                    "latent_std": float(np.std(z_test.cpu().numpy(), axis=0).mean()),
                    "seconds": round(seconds, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
