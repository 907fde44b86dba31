"""Do the AE's fast paths learn what the NCHW float32 reference learns? (run by hand)

Trains the TAXONS autoencoder on the stored frames of a TAXONS run (its novelty archive and
population) with each path (``reference``: NCHW float32, ``channels_last``: the default,
``bfloat16``: channels-last with bfloat16 autocast) for 3 seeds (weights and split), a fixed
number of epochs without early stop, and compares each path's validation-loss curve with the
reference's at the same seed against the seed-to-seed spread of the reference curves
(max - min over the seeds, per epoch). Also prints the time per training.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ae_precision.py RUN_FOLDER [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from qd.archive import Archive
from qd.behaviour.autoencoder import AETrainingConfig, ConvAE, train_autoencoder

MODES = {
    "reference": {"channels_last": False},
    "channels_last": {},
    "bfloat16": {"precision": "bfloat16"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a TAXONS run folder (its archive/ holds the frames)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", help="write the curves here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = [
        Archive.load(Path(args.run) / "archive" / f"{name}.safetensors").field("frames")
        for name in ("novelty", "population")
    ]
    frames = torch.cat(parts)
    curves: dict[str, dict[int, list[float]]] = {m: {} for m in MODES}
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    for seed in args.seeds:
        for mode, options in MODES.items():  # alternate the paths: same load for each
            config = AETrainingConfig(max_epochs=args.epochs, patience=None, seed=seed, **options)
            report = train_autoencoder(ConvAE(seed=seed), frames, config)
            curves[mode][seed] = [report.initial_val_loss, *report.val_losses]
            seconds[mode].append(report.seconds)
            print(f"seed {seed} {mode:>13}: final val {report.val_losses[-1]:.6f} "
                  f"({report.seconds:.1f} s)", flush=True)  # fmt: skip
    ref = curves["reference"]
    epochs = range(args.epochs + 1)
    spread = [
        max(ref[s][e] for s in args.seeds) - min(ref[s][e] for s in args.seeds) for e in epochs
    ]
    middle = sorted(spread[1:])[len(spread) // 2]
    print(f"{len(frames)} images; seed-to-seed spread of the reference val loss (epochs 1..): "
          f"min {min(spread[1:]):.2e}, median {middle:.2e}")  # fmt: skip
    summary = {}
    for mode in MODES:
        diff = [max(abs(curves[mode][s][e] - ref[s][e]) for s in args.seeds) for e in epochs]
        within = sum(d <= w for d, w in zip(diff[1:], spread[1:], strict=True))
        summary[mode] = {
            "mean_seconds": sum(seconds[mode]) / len(seconds[mode]),
            "max_diff_to_reference": max(diff),
            "epochs_within_spread": within,
            "final_val_loss": [curves[mode][s][-1] for s in args.seeds],
        }
        print(f"{mode:>13}: {summary[mode]['mean_seconds']:.1f} s per training "
              f"(x{sum(seconds['reference']) / sum(seconds[mode]):.2f}), max |diff| to the "
              f"reference curve {max(diff):.2e}, within the seed spread at {within} of "
              f"{args.epochs} epochs")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"curves": curves, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
