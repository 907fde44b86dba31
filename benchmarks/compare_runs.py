"""Table and curves comparing groups of finished runs (e.g. SERENE vs NS over 3 seeds).

Usage::

    python benchmarks/compare_runs.py --group serene runs/serene-curling-s* \
        --group ns runs/ns-curling-s* --out runs/serene-vs-ns [--json] [--x wall_time_s]

Writes ``OUT.png`` (max reward per reward area and coverage vs evaluations: mean over the seeds of
a group, band = min..max) and prints one row per group: final max reward per area (mean and
per seed), evaluations at which each area was first reached, coverage, wall time and the share
of wall time spent outside rollouts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from qd.report import read_metrics


def _curves(folder: Path) -> dict[str, np.ndarray]:
    metrics = read_metrics(folder)
    return {
        "evaluations": np.array([m["evaluations"] for m in metrics], dtype=float),
        "max_reward": np.array([m["max_reward"] for m in metrics], dtype=float),
        "coverage": np.array([m["coverage"] for m in metrics], dtype=float),
        "wall_time_s": np.array([m["wall_time_s"] for m in metrics], dtype=float),
        "rollout_time_s": np.array([m["rollout_time_s"] for m in metrics], dtype=float),
    }


def _first_reached(curve: dict, area: int) -> float | None:
    hit = np.nonzero(curve["max_reward"][:, area] > 0)[0]
    return float(curve["evaluations"][hit[0]]) if len(hit) else None


def summarise(groups: dict[str, list[Path]]) -> dict[str, dict]:
    """One summary per group (see the module docstring)."""
    table = {}
    for name, folders in groups.items():
        curves = [_curves(f) for f in folders]
        final = np.stack([c["max_reward"][-1] for c in curves])  # [seeds, areas]
        wall = np.array([c["wall_time_s"][-1] for c in curves])
        rollout = np.array([c["rollout_time_s"][-1] for c in curves])
        table[name] = {
            "runs": [str(f) for f in folders],
            "evaluations": [int(c["evaluations"][-1]) for c in curves],
            "max_reward_mean": final.mean(0).round(4).tolist(),
            "max_reward_per_seed": final.round(4).tolist(),
            "first_reached": [
                [_first_reached(c, a) for a in range(final.shape[1])] for c in curves
            ],
            "coverage": [round(float(c["coverage"][-1]), 4) for c in curves],
            "wall_time_s": wall.round(1).tolist(),
            "outside_rollouts_share": (1 - rollout / wall).round(4).tolist(),
        }
    return table


def plot(groups: dict[str, list[Path]], out: Path, x: str = "evaluations") -> Path:
    """Reward per area and coverage vs ``x`` (``evaluations`` or ``wall_time_s``), one colour
    per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {name: [_curves(f) for f in folders] for name, folders in groups.items()}
    areas = max(c["max_reward"].shape[1] for cs in curves.values() for c in cs)
    fig, axes = plt.subplots(1, areas + 1, figsize=(4.2 * (areas + 1), 3.4))
    for name, cs in curves.items():
        grid = np.linspace(0, min(c[x][-1] for c in cs), 200)
        panels = [
            (f"max reward, area {a}", [c["max_reward"][:, a] for c in cs]) for a in range(areas)
        ]
        panels.append(("coverage (all explored)", [c["coverage"] for c in cs]))
        for ax, (title, series) in zip(axes, panels, strict=True):
            values = np.stack([np.interp(grid, c[x], s) for c, s in zip(cs, series, strict=True)])
            (line,) = ax.plot(grid, values.mean(0), label=f"{name} ({len(cs)} seeds)")
            ax.fill_between(grid, values.min(0), values.max(0), alpha=0.2, color=line.get_color())
            ax.set_title(title)
            ax.set_xlabel("evaluations" if x == "evaluations" else "wall time (s)")
    axes[0].legend()
    fig.tight_layout()
    out = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--group",
        nargs="+",
        action="append",
        required=True,
        metavar=("NAME", "RUN"),
        help="a group name followed by its run folders",
    )
    parser.add_argument("--out", default="runs/compare", help="figure path (without .png)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.add_argument(
        "--x", default="evaluations", choices=["evaluations", "wall_time_s"], help="x axis"
    )
    args = parser.parse_args(argv)
    groups = {g[0]: [Path(p) for p in g[1:]] for g in args.group}
    for name, folders in groups.items():
        if not folders:
            parser.error(f"group {name!r} has no run folders")
    table = summarise(groups)
    figure = plot(groups, Path(args.out), args.x)
    if args.json:
        print(json.dumps({"figure": str(figure), "groups": table}, indent=2))
        return 0
    for name, row in table.items():
        print(f"{name}: max reward per area (mean) {row['max_reward_mean']}")
        print(f"  per seed {row['max_reward_per_seed']}")
        print(f"  first reached at {row['first_reached']}")
        print(
            f"  coverage {row['coverage']}, wall {row['wall_time_s']} s, "
            f"outside rollouts {row['outside_rollouts_share']}"
        )
    print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
