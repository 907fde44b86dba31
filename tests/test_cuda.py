"""CUDA paths (skipped without a GPU; run on a GPU machine with `pytest tests/test_cuda.py`)."""

import pytest
import torch

import envs
from qd.archive import Archive
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_rollout_on_cuda_matches_cpu_closely():
    env = envs.make("hardmaze", episode_length=50)
    gen = torch.Generator().manual_seed(0)
    genomes = torch.randn(64, 63, generator=gen).clamp(-5, 5)
    cpu = LocalEvaluator(env, SereneMLP((5, 5, 5, 2))).evaluate(genomes, frames=1, trajectory=5)
    gpu = LocalEvaluator(env, SereneMLP((5, 5, 5, 2)), device="cuda").evaluate(
        genomes, frames=1, trajectory=5
    )
    assert gpu.descriptor.device.type == "cuda" and gpu.frames.shape == cpu.frames.shape
    # Different float rounding (fma, transcendental kernels) may flip a few collisions over
    # 50 steps; most individuals must agree closely.
    close = (gpu.descriptor.cpu() - cpu.descriptor).abs().max(1).values < 1e-3
    assert close.float().mean() > 0.9


def test_novelty_on_cuda_matches_cpu():
    refs = torch.rand(5000, 2)
    queries = torch.rand(300, 2)
    out = []
    for device in ("cpu", "cuda"):
        archive = Archive(solution_dim=1, measure_dim=2, device=device)
        archive.add(torch.zeros(5000, 1), torch.zeros(5000), refs, novelty=torch.zeros(5000))
        out.append(
            archive.novelty(queries, reference=queries, self_index=5000 + torch.arange(300)).cpu()
        )
    torch.testing.assert_close(out[0], out[1], rtol=1e-4, atol=1e-6)


def test_ns_run_on_cuda(tmp_path):
    from qd.run import RunConfig, start

    config = RunConfig(
        algorithm="ns",
        env="hardmaze",
        out=str(tmp_path / "run"),
        budget=700,
        device="cuda",
        env_options={"episode_length": 50},
    )
    folder = start(config, progress=False)
    assert (folder / "archive" / "novelty.safetensors").is_file()
