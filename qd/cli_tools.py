"""Handlers of the run-inspection commands: ``qd inspect/plot/replay/export/compare/evolvability``.

None of them writes inside a run folder: outputs go to ``--out`` or the current directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from qd.cli_errors import check_positive, refuse_inside_run
from qd.cli_inspect import cmd_inspect  # noqa: F401  (re-exported)
from qd.report import env_of, open_archive, read_config, read_metrics
from qd.run_folder import expand_runs


def _run_policy(config: dict, env):
    """The policy the run evaluated (None for a bare archive file: SERENE-family default)."""
    if "algorithm" not in config:
        return None
    from qd.algorithms import policy_for

    return policy_for(config["algorithm"], env.spec, config.get("policy_hidden"))


def _default_out(run: str, suffix: str) -> str:
    return f"{Path(run).resolve().name}-{suffix}"


_CURVES = {
    "coverage": ["coverage", "coverage_archive"],
    "novelty": ["novelty_mean", "novelty_max"],
    "lambda": ["lambda"],
}


def cmd_plot(args: argparse.Namespace) -> int:
    from qd.metrics import cell_values
    from qd.plotting import plot_curves, plot_descriptors, plot_heatmap

    run = Path(args.run)
    out = args.out or _default_out(args.run, f"{args.kind}.png")
    refuse_inside_run(out)
    read_config(run)  # a run folder (clear errors for lockstep parents and other folders)
    if args.kind in ("coverage", "reward", "novelty", "lambda"):
        metrics = read_metrics(run)
        if not metrics:
            raise ValueError(f"{run}: metrics.jsonl is empty or missing")
        evals = np.array([m["evaluations"] for m in metrics])
        if args.kind == "reward":
            rewards = np.array([m["max_reward"] for m in metrics])
            series = {f"area {i}": rewards[:, i] for i in range(rewards.shape[1])}
        else:
            missing = [k for k in _CURVES[args.kind] if k not in metrics[-1]]
            if missing:
                raise ValueError(f"{run}: this run's metrics have no {', '.join(missing)}")
            series = {k: np.array([m[k] for m in metrics]) for k in _CURVES[args.kind]}
        plot_curves(
            evals,
            series,
            out,
            xlabel="evaluations",
            ylabel=args.kind,
            title=f"{run.name}: {args.kind}",
        )
        print(out)
        return 0
    archive, _ = open_archive(run, args.archive)
    env = env_of(run, archive, imports=args.imports)  # only the archive plots need the env
    gt = archive.field("ground_truth")
    if gt.shape[1] != 2:
        raise ValueError("descriptor plots need a 2-D ground-truth descriptor")
    if args.kind == "descriptors":
        plot_descriptors(
            env,
            gt.numpy(),
            out,
            colours=archive.objectives.numpy(),
            colour_label="objective",
            title=f"{run.name}: {archive.name} archive ({len(archive)})",
        )
    else:
        values = cell_values(gt, archive.objectives, env.spec.to_dict(), value=args.value)
        plot_heatmap(
            env,
            values.numpy(),
            out,
            title=f"{run.name}: {args.value} per cell ({archive.name} archive)",
            colour_label=args.value,
        )
    print(out)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from qd.plotting import plot_paths
    from qd.replay import choose_index, replay, write_gif

    run = Path(args.run)
    check_positive(frames=args.frames if args.gif else None)
    if args.out:
        refuse_inside_run(args.out)
    archive, _ = open_archive(run, args.archive)
    env = env_of(run, archive, imports=args.imports)
    config = read_config(run) if run.is_dir() else {}
    seed = config.get("seed", 0)
    index = choose_index(archive, index=args.index, best=args.best, area=args.area)
    result = replay(
        archive,
        env,
        index,
        seed=seed,
        device=args.device,
        frames=args.frames if args.gif else 0,
        hidden=config.get("policy_hidden"),
        policy=_run_policy(config, env),
    )
    out = args.out or _default_out(args.run, f"replay-{index}.png")
    refuse_inside_run(out)
    plot_paths(
        env,
        result.path[None],
        out,
        title=f"{run.name}: #{index}, reward {result.replayed['fitness']:.3f}",
    )
    print(f"replayed #{index}: stored {result.stored}, replayed {result.replayed}")
    print(f"trajectory: {out}")
    if args.gif:
        print(f"animation: {write_gif(result.frames, Path(out).with_suffix('.gif'))}")
    if not result.matches:
        print("MISMATCH: the replayed outcome differs from the stored one", file=sys.stderr)
        return 1
    print("outcome matches the stored one")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.out:
        refuse_inside_run(args.out)
    if args.format == "tensorboard":
        from qd.tensorboard import export

        if args.archive:
            raise ValueError("--archive: a TensorBoard export draws the run's main archive")
        for row in export(args.run, args.out, imports=args.imports):
            print(
                f"{row['lines']} metrics lines, {row['archives']} archives: {row['run']} -> "
                f"{row['out']}"
            )
        return 0
    archive, path = open_archive(args.run, args.archive)
    names = [n for n, (shape, _) in archive.schema.items() if len(shape) <= 1]
    frame = archive.data([*names, "index"], return_type="pandas")
    out = args.out or _default_out(args.run, f"{archive.name}.{args.format}")
    refuse_inside_run(out)
    if args.format == "csv":
        frame.to_csv(out, index=False)
    else:
        try:
            frame.to_parquet(out, index=False)
        except ImportError as err:
            raise ValueError(f"parquet export needs pyarrow: pip install pyarrow ({err})") from None
    print(f"{len(frame)} rows from {path} -> {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from qd.plotting import plot_bands

    out = args.out or f"compare-{args.metric}.png"
    refuse_inside_run(out)
    groups: dict[str, list] = defaultdict(list)
    for run in expand_runs(args.runs):
        config = read_config(run)
        metrics = read_metrics(run)
        if not metrics:
            raise ValueError(f"{run}: metrics.jsonl is empty or missing")
        if args.metric != "max_reward":  # lines without it (e.g. a cut last batch) are skipped
            metrics = [m for m in metrics if args.metric in m]
            if not metrics:
                raise ValueError(f"{run}: no metric {args.metric!r}")
        evals = np.array([m["evaluations"] for m in metrics], dtype=float)
        if args.metric == "max_reward":
            values = np.array([max(m["max_reward"], default=0.0) for m in metrics])
        else:
            values = np.array([m[args.metric] for m in metrics], dtype=float)
        options = {
            **config["algorithm_config"],
            **{f"env.{k}": v for k, v in config.get("env_options", {}).items()},
        }
        settings = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
        label = f"{config['algorithm']} on {config['env']}" + (f" ({settings})" if settings else "")
        groups[label].append((evals, values))
    bands, table = {}, {}
    for label, curves in groups.items():
        end = min(e[-1] for e, _ in curves)
        xs = np.linspace(0, end, 200)
        ys = np.stack([np.interp(xs, e, v) for e, v in curves])
        bands[label] = (xs, ys)
        table[label] = {
            "runs": len(curves),
            "evaluations": float(end),
            "final_mean": float(ys[:, -1].mean()),
            "final_min": float(ys[:, -1].min()),
            "final_max": float(ys[:, -1].max()),
        }
    plot_bands(
        bands,
        out,
        xlabel="evaluations",
        ylabel=args.metric,
        title=f"{args.metric}: mean and min-max over runs",
    )
    print(json.dumps({"plot": out, "groups": table}, indent=2))
    return 0


def cmd_evolvability(args: argparse.Namespace) -> int:
    from qd.evolvability import evolvability

    check_positive(sample=args.sample, mutants=args.mutants)
    archive, _ = open_archive(args.run, args.archive)
    env = env_of(args.run, archive, imports=args.imports)
    if args.index is not None:
        if not 0 <= args.index < len(archive):
            raise ValueError(f"--index {args.index} out of range ({len(archive)} rows)")
        indices = [args.index]
    else:
        gen = torch.Generator().manual_seed(args.seed)
        indices = torch.randperm(len(archive), generator=gen)[: args.sample].tolist()
    sigma, hidden, config = 0.05, None, {}
    if Path(args.run).is_dir():
        config = read_config(args.run)
        sigma = config.get("algorithm_config", {}).get("sigma", sigma)
        hidden = config.get("policy_hidden")
    rows = evolvability(
        archive.genomes[indices],
        env,
        mutants=args.mutants,
        sigma=sigma,
        seed=args.seed,
        device=args.device,
        hidden=hidden,
        policy=_run_policy(config, env),
    )
    for i, row in zip(indices, rows, strict=True):
        row["index"] = i
    result = {
        "individuals": rows,
        "mean_coverage": float(np.mean([r["coverage"] for r in rows])),
        "mean_uniformity": float(np.mean([r["uniformity"] for r in rows])),
        "sigma": sigma,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for r in rows:
        print(
            f"#{r['index']:<6} coverage {r['coverage']:.4f}  uniformity {r['uniformity']:.3f}"
            f"  ({r['filled_cells']} cells from {r['mutants']} mutants)"
        )
    print(
        f"mean coverage {result['mean_coverage']:.4f}, "
        f"mean uniformity {result['mean_uniformity']:.3f}"
    )
    return 0
