"""Throughput benchmarks behind ``qd bench`` (printed, never asserted in tests)."""

from __future__ import annotations

import resource
import sys
import time

import torch

import envs
from qd.evaluation import LocalEvaluator, resolve_device
from qd.policies import SereneMLP, serene_sizes


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


ROLLOUT_MODES = ("eager", "compiled", "fused")


def rollout_throughput(
    env_name: str,
    batches: list[int],
    *,
    modes: tuple[str, ...] = ("eager",),
    steps: int | None = None,
    device: str = "cpu",
    episodes: int = 1,
    seed: int = 0,
    compile_steps: int = 8,
    compile_mode: str | None = None,
    rollout_workers: int = 1,
) -> list[dict]:
    """Policy-steps per second of full episodes of random SERENE policies, per batch size and
    rollout mode, with ratios against eager measured in the same process.

    Modes: ``eager`` (the reference loop), ``compiled`` (blocks of ``compile_steps`` compiled
    steps, bit-identical to eager), ``fused`` (compiled with transcendental functions fused
    too; not bit-identical). Each mode's evaluator is built and warmed once (a full episode of
    8 episodes; for the compiled modes this includes the one compilation, reported as
    ``warmup_s``); then, per batch size, the modes are timed one after the other.
    ``rollout_workers`` applies to every mode (see :class:`qd.evaluation.LocalEvaluator`).
    """
    unknown = set(modes) - set(ROLLOUT_MODES)
    if unknown or "eager" not in modes:
        raise ValueError(f"modes must include 'eager' and be among {ROLLOUT_MODES}, got {modes}")
    dev = resolve_device(device)
    options = {} if steps is None else {"episode_length": int(steps)}
    env = envs.make(env_name, **options)
    policy = SereneMLP(serene_sizes(env.spec.obs_size, env.spec.action_size, env=env.spec.name))
    gen = torch.Generator().manual_seed(seed)
    genomes = torch.randn(max(batches), policy.genome_size, generator=gen).clamp(-5, 5).to(dev)
    evaluators, warmup = {}, {}
    for mode in modes:
        start = time.perf_counter()
        evaluators[mode] = LocalEvaluator(
            env,
            policy,
            device=dev,
            max_batch=max(batches),
            seed=seed,
            compile=mode != "eager",
            compile_exact=mode == "compiled",
            compile_steps=compile_steps,
            compile_mode=compile_mode,
            rollout_threads=None,  # the process's setting (--threads)
            rollout_workers=rollout_workers,
        )
        evaluators[mode].evaluate(genomes[:8])
        warmup[mode] = time.perf_counter() - start
    rows = []
    length = env.spec.episode_length
    for batch in batches:
        eager_rate = None
        for mode in modes:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            start = time.perf_counter()
            for _ in range(episodes):
                out = evaluators[mode].evaluate(genomes[:batch])
            out.fitness.sum().item()  # wait for the device
            wall = time.perf_counter() - start
            rate = batch * length * episodes / wall
            eager_rate = eager_rate or rate
            rows.append(
                {
                    "env": env_name,
                    "device": str(dev),
                    "mode": mode,
                    "batch": batch,
                    "steps": length,
                    "episodes": episodes,
                    "wall_s": wall,
                    "policy_steps_per_s": rate,
                    "ratio_vs_eager": rate / eager_rate,
                    "peak_memory_mb": _peak_memory_mb(dev),
                    "threads": torch.get_num_threads(),
                    "rollout_workers": rollout_workers,
                    "compile_steps": compile_steps if mode != "eager" else None,
                    "warmup_s": warmup[mode],
                }
            )
    return rows


def novelty_throughput(
    *,
    n_refs: int = 100_000,
    n_queries: int = 4096,
    dim: int = 2,
    k: int = 15,
    seed: int = 0,
    repeats: int = 3,
    device: str = "cpu",
) -> dict:
    """Time exact k-NN novelty of ``n_queries`` against ``n_refs`` stored descriptors.

    Baselines, on the same data in the same process: scikit-learn ``NearestNeighbors`` (fit +
    query) and pyribs ``ProximityArchive.compute_novelty`` (its k-D tree is built when rows are
    added, so only the query is timed). Ours is timed end to end (it rebuilds its k-D tree or
    runs the brute force on every call, since archives change every generation). Best of
    ``repeats``; ``max_abs_diff`` is the largest difference to scikit-learn.
    """
    import numpy as np
    from ribs.archives import ProximityArchive
    from sklearn.neighbors import NearestNeighbors

    from qd.archive import Archive

    dev = resolve_device(device)
    rng = np.random.default_rng(seed)
    refs = rng.random((n_refs, dim)).astype(np.float32)
    queries = rng.random((n_queries, dim)).astype(np.float32)

    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        return min(times), result

    archive = Archive(
        solution_dim=1, measure_dim=dim, k_neighbors=k, device=dev, initial_capacity=n_refs
    )
    archive.add(np.zeros((n_refs, 1)), np.zeros(n_refs), refs, novelty=torch.zeros(n_refs))
    q = torch.from_numpy(queries).to(dev)

    def ours():
        out = archive.novelty(q)
        return out.cpu().numpy()

    def sklearn():
        nn = NearestNeighbors(n_neighbors=k).fit(refs)
        return nn.kneighbors(queries)[0].mean(1)

    ribs_archive = ProximityArchive(
        solution_dim=1,
        measure_dim=dim,
        k_neighbors=k,
        novelty_threshold=-1.0,
        initial_capacity=n_refs,
    )
    ribs_archive.add(np.zeros((n_refs, 1)), np.zeros(n_refs), refs)
    t_ours, v_ours = best(ours)
    t_sk, v_sk = best(sklearn)
    t_ribs, v_ribs = best(lambda: ribs_archive.compute_novelty(queries))
    return {
        "dim": dim,
        "n_refs": n_refs,
        "n_queries": n_queries,
        "k": k,
        "device": str(dev),
        "ours_s": t_ours,
        "sklearn_s": t_sk,
        "ribs_proximity_s": t_ribs,
        "speedup_vs_sklearn": t_sk / t_ours,
        "speedup_vs_ribs": t_ribs / t_ours,
        "max_abs_diff_vs_sklearn": float(np.abs(v_ours - v_sk).max()),
        "max_abs_diff_vs_ribs": float(np.abs(v_ours - v_ribs).max()),
    }


def ray_scaling(
    env_name: str = "hardmaze",
    *,
    batch: int = 2048,
    steps: int | None = None,
    workers: tuple[int, ...] = (1, 2),
    address: str | None = None,
    seed: int = 0,
) -> list[dict]:
    """Episodes per second with :class:`~qd.evaluation.RayEvaluator` for each worker count,
    against the :class:`~qd.evaluation.LocalEvaluator` baseline in the same process.

    Each measurement evaluates the same ``batch`` genomes twice and times the second call
    (actor start-up and table building excluded). On a cluster pass ``address``; scaling to N
    workers holds while each actor's shard stays large enough to vectorise (>= ~1000 episodes
    on a CPU actor).
    """
    from qd.evaluation_ray import RayEvaluator

    options = {} if steps is None else {"episode_length": int(steps)}
    env = envs.make(env_name, **options)
    policy = SereneMLP(serene_sizes(env.spec.obs_size, env.spec.action_size, env=env.spec.name))
    gen = torch.Generator().manual_seed(seed)
    genomes = torch.randn(batch, policy.genome_size, generator=gen).clamp(-5, 5)

    def timed(evaluator) -> float:
        evaluator.evaluate(genomes[: min(batch, 64)])
        start = time.perf_counter()
        evaluator.evaluate(genomes)
        return time.perf_counter() - start

    local_s = timed(LocalEvaluator(env, policy, max_batch=batch, seed=seed))
    rows = [
        {
            "evaluator": "local",
            "workers": 0,
            "wall_s": local_s,
            "episodes_per_s": batch / local_s,
            "ratio_vs_local": 1.0,
        }
    ]
    for n in workers:
        ray_ev = RayEvaluator(
            env_name,
            policy,
            env_options=options,
            workers=n,
            address=address,
            max_batch=batch,
            seed=seed,
        )
        try:
            wall = timed(ray_ev)
        finally:
            ray_ev.close()
        rows.append(
            {
                "evaluator": "ray",
                "workers": n,
                "wall_s": wall,
                "episodes_per_s": batch / wall,
                "ratio_vs_local": local_s / wall,
            }
        )
    for row in rows:
        row.update(env=env_name, batch=batch, steps=env.spec.episode_length)
    return rows


AE_MODES = ("reference", "channels_last", "bfloat16")


def _rendered_frames(env_name: str, count: int, *, steps: int | None, seed: int) -> torch.Tensor:
    """Final frames ``[count, 64, 64, 3]`` (uint8) of random SERENE policies in ``env_name``."""
    options = {} if steps is None else {"episode_length": int(steps)}
    env = envs.make(env_name, **options)
    policy = SereneMLP(serene_sizes(env.spec.obs_size, env.spec.action_size, env=env.spec.name))
    gen = torch.Generator().manual_seed(seed)
    genomes = torch.randn(count, policy.genome_size, generator=gen).clamp(-5, 5)
    evaluator = LocalEvaluator(env, policy, max_batch=min(count, 1000), seed=seed)
    return evaluator.evaluate(genomes, frames=1).frames[:, -1].cpu()


def ae_throughput(
    *,
    env_name: str = "hardmaze",
    images: int = 1000,
    epochs: int = 2,
    encode: int = 2000,
    modes: tuple[str, ...] = ("reference", "channels_last"),
    repeats: int = 2,
    steps: int | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> list[dict]:
    """Time one TAXONS autoencoder training round and the re-encoding of stored frames, per
    AE path, with ratios against the reference path measured in the same process.

    Paths: ``reference`` (NCHW float32: ``AETrainingConfig(channels_last=False)``),
    ``channels_last`` (the default: float32 in the channels-last layout) and ``bfloat16``
    (channels-last, training steps under bfloat16 autocast). Every path trains a fresh
    ``ConvAE(seed=seed)`` for ``epochs`` epochs (no early stop) on the same ``images`` final
    frames of random policies in ``env_name`` (80/20 split, batch 128), then describes
    ``encode`` frames (the frames repeated as needed). After one untimed warm-up epoch per path
    (on at most 256 frames), the paths alternate ``repeats`` times; each reports its fastest
    round. ``max_val_loss_diff`` and ``max_latent_diff`` compare the
    validation-loss curve and the latents with the reference path's.
    """
    from qd.behaviour.autoencoder import AETrainingConfig, ConvAE, describe, train_autoencoder

    unknown = set(modes) - set(AE_MODES)
    if unknown or "reference" not in modes:
        raise ValueError(f"modes must include 'reference' and be among {AE_MODES}, got {modes}")
    if min(images, epochs, encode, repeats) < 1 or images < 2:
        raise ValueError(
            f"need images >= 2 and epochs, encode, repeats >= 1, got images={images}, "
            f"epochs={epochs}, encode={encode}, repeats={repeats}"
        )
    dev = resolve_device(device)
    frames = _rendered_frames(env_name, images, steps=steps, seed=seed)
    stored = frames.repeat(-(-encode // images), 1, 1, 1)[:encode].to(dev)
    for mode in modes:  # warm-up: oneDNN kernels, first-call allocations
        config = AETrainingConfig(
            max_epochs=1,
            seed=seed,
            channels_last=mode != "reference",
            precision="bfloat16" if mode == "bfloat16" else "float32",
        )
        train_autoencoder(ConvAE(seed=seed).to(dev), frames[:256], config, device=dev)
    train_s = {m: [] for m in modes}
    encode_s = {m: [] for m in modes}
    results: dict[str, tuple] = {}

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(repeats):
        for mode in modes:
            model = ConvAE(seed=seed).to(dev)
            config = AETrainingConfig(
                max_epochs=epochs,
                patience=None,
                seed=seed,
                channels_last=mode != "reference",
                precision="bfloat16" if mode == "bfloat16" else "float32",
            )
            sync()
            report = train_autoencoder(model, frames, config, device=dev)
            sync()
            train_s[mode].append(report.seconds)
            start = time.perf_counter()
            latents, surprise = describe(model, stored, channels_last=mode != "reference")
            sync()
            encode_s[mode].append(time.perf_counter() - start)
            results[mode] = (report, latents.cpu())
    ref_report, ref_latents = results["reference"]
    rows = []
    for mode in modes:
        report, latents = results[mode]
        train, enc = min(train_s[mode]), min(encode_s[mode])
        curve_diff = [
            abs(a - b) for a, b in zip(report.val_losses, ref_report.val_losses, strict=True)
        ]
        rows.append(
            {
                "mode": mode,
                "env": env_name,
                "device": str(dev),
                "threads": torch.get_num_threads(),
                "images": images,
                "epochs": epochs,
                "train_s": train,
                "ms_per_image_epoch": train / (images * epochs) * 1e3,
                "train_ratio_vs_reference": min(train_s["reference"]) / train,
                "encode_images": encode,
                "encode_s": enc,
                "encode_ms_per_image": enc / encode * 1e3,
                "encode_ratio_vs_reference": min(encode_s["reference"]) / enc,
                "final_val_loss": report.val_losses[-1],
                "max_val_loss_diff": max(curve_diff),
                "max_latent_diff": float((latents - ref_latents).abs().max()),
            }
        )
    return rows
