"""``qd bench ...``: throughput benchmarks (printed, never asserted in tests)."""

from __future__ import annotations

import argparse
import json

EPILOG_BENCH = """examples:
  qd bench rollout --env hardmaze --batch 12 200 4096 --threads 1 --compile --json
  qd bench rollout --env curling --batch 12 200 --compile --fused --compile-steps 16
  (ratios are against the eager loop, measured in the same process; compiled modes are
  compiled once, on 8 episodes, before timing: their warm-up is reported)"""


def _cmd_bench_rollout(args: argparse.Namespace) -> int:
    import torch

    from qd.bench import rollout_throughput

    if args.threads:
        torch.set_num_threads(args.threads)
    modes = ("eager",) + ("compiled",) * args.compile + ("fused",) * args.fused
    results = rollout_throughput(
        args.env,
        args.batch,
        modes=modes,
        steps=args.steps,
        device=args.device,
        episodes=args.episodes,
        compile_steps=args.compile_steps,
        compile_mode=args.compile_mode,
        rollout_workers=args.rollout_workers,
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        warm = f"  (warm-up {r['warmup_s']:.1f} s)" if r["mode"] != "eager" else ""
        print(
            f"{r['env']} {r['device']} threads={r['threads']} B={r['batch']:>6} T={r['steps']} "
            f"{r['mode']:>8}: {r['policy_steps_per_s'] / 1e6:8.3f} M policy-steps/s  "
            f"x{r['ratio_vs_eager']:.2f} vs eager  peak {r['peak_memory_mb']:.0f} MB  "
            f"({r['wall_s']:.2f} s){warm}",
            flush=True,
        )
    return 0


def _cmd_bench_ray(args: argparse.Namespace) -> int:
    from qd.bench import ray_scaling

    rows = ray_scaling(
        args.env,
        batch=args.batch,
        steps=args.steps,
        workers=tuple(args.workers),
        address=args.address,
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        label = "local" if r["evaluator"] == "local" else f"ray x{r['workers']}"
        print(
            f"{r['env']} B={r['batch']} T={r['steps']} {label:>8}: "
            f"{r['episodes_per_s']:9.1f} episodes/s  x{r['ratio_vs_local']:.2f} vs local "
            f"({r['wall_s']:.2f} s)"
        )
    return 0


def _cmd_bench_novelty(args: argparse.Namespace) -> int:
    from qd.bench import novelty_throughput

    results = [
        novelty_throughput(
            n_refs=args.refs, n_queries=args.queries, dim=d, k=args.k, device=args.device
        )
        for d in args.dim
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(
            f"d={r['dim']:>3} {r['n_queries']} queries x {r['n_refs']} refs ({r['device']}): "
            f"ours {r['ours_s'] * 1e3:8.1f} ms | scikit-learn {r['sklearn_s'] * 1e3:8.1f} ms "
            f"(x{r['speedup_vs_sklearn']:.2f}) | pyribs ProximityArchive "
            f"{r['ribs_proximity_s'] * 1e3:8.1f} ms (x{r['speedup_vs_ribs']:.2f}) | "
            f"max |diff| {r['max_abs_diff_vs_sklearn']:.1e}"
        )
    return 0


def _cmd_bench_ae(args: argparse.Namespace) -> int:
    import torch

    from qd.bench import ae_throughput

    if args.threads:
        torch.set_num_threads(args.threads)
    modes = ("reference", "channels_last") + ("bfloat16",) * args.bf16
    rows = ae_throughput(
        env_name=args.env,
        images=args.images,
        epochs=args.epochs,
        encode=args.encode,
        modes=modes,
        repeats=args.repeats,
        steps=args.steps,
        device=args.device,
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['mode']:>13} {r['device']} threads={r['threads']}: train {r['images']} images x "
            f"{r['epochs']} epochs {r['train_s']:.2f} s ({r['ms_per_image_epoch']:.2f} ms/image) "
            f"x{r['train_ratio_vs_reference']:.2f} | encode {r['encode_images']} "
            f"{r['encode_s']:.2f} s x{r['encode_ratio_vs_reference']:.2f} | max diff to "
            f"reference: val loss {r['max_val_loss_diff']:.1e}, latent {r['max_latent_diff']:.1e}"
        )
    return 0


def add_bench_parser(sub) -> None:
    """Add ``qd bench`` and its subcommands to the ``qd`` subparsers ``sub``."""
    bench = sub.add_parser(
        "bench",
        help="throughput benchmarks",
        epilog="examples:\n  qd bench rollout --batch 1 256 1024 4096\n  qd bench novelty\n"
        "  qd bench ae --bf16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    p = bench_sub.add_parser(
        "rollout",
        help="policy-steps per second of full episodes",
        epilog=EPILOG_BENCH,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="hardmaze", help="environment name (see `qd envs`)")
    p.add_argument("--batch", type=int, nargs="+", default=[1024], help="batch size(s)")
    p.add_argument("--steps", type=int, default=None, help="episode length (default: env's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--episodes", type=int, default=1, help="timed episodes per batch size")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument(
        "--rollout-workers",
        type=int,
        default=1,
        help="Python threads stepping parts of each batch at once (every mode; default 1)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time the compiled rollout, bit-identical to eager (ratio against eager)",
    )
    p.add_argument(
        "--fused",
        action="store_true",
        help="also time the compiled rollout with cos/tanh... fused (not bit-identical)",
    )
    p.add_argument(
        "--compile-steps", type=int, default=8, help="steps per compiled call (default 8)"
    )
    p.add_argument(
        "--compile-mode",
        default=None,
        help="torch.compile mode (default; reduce-overhead adds CUDA graphs)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_bench_rollout)

    p = bench_sub.add_parser(
        "ray",
        help="Ray evaluation scaling against the local evaluator (same process)",
        epilog="example:\n  qd bench ray --workers 1 2 --batch 2048\n"
        "  qd bench ray --workers 8 16 --address ray://head:10001   (a cluster)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="hardmaze")
    p.add_argument("--batch", type=int, default=2048, help="episodes per evaluation")
    p.add_argument("--steps", type=int, default=None, help="episode length (default: env's)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts")
    p.add_argument("--address", help="Ray cluster address (default: local Ray)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_bench_ray)

    p = bench_sub.add_parser(
        "novelty",
        help="exact k-NN novelty vs scikit-learn and pyribs on the same data",
        epilog="example:\n  qd bench novelty --dim 2 10 --refs 100000 --queries 4096",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dim", type=int, nargs="+", default=[2, 10], help="descriptor sizes")
    p.add_argument("--refs", type=int, default=100_000, help="stored descriptors")
    p.add_argument("--queries", type=int, default=4096, help="queries")
    p.add_argument("--k", type=int, default=15, help="neighbours")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_bench_novelty)

    p = bench_sub.add_parser(
        "ae",
        help="TAXONS/STAX autoencoder training and re-encoding vs the NCHW reference path",
        epilog="example:\n  qd bench ae --images 1000 --epochs 2 --encode 2000 --bf16 --threads 1\n"
        "  (ratios against the NCHW float32 path, measured in the same process)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="hardmaze", help="env whose final frames are used")
    p.add_argument("--images", type=int, default=1000, help="training images (80/20 split)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed training")
    p.add_argument("--encode", type=int, default=2000, help="frames re-encoded")
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds (best counts)")
    p.add_argument("--steps", type=int, default=None, help="episode length (default: env's)")
    p.add_argument("--bf16", action="store_true", help="also time bfloat16 autocast training")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_bench_ae)
