"""Ray evaluation on a local Ray instance."""

import threading
import time

import pytest
import torch

import envs
from qd.evaluation import LocalEvaluator
from qd.policies import SereneMLP

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(
        num_cpus=4,  # logical CPUs: the module evaluator and a run evaluator coexist
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 2**20,
        ignore_reinit_error=True,
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def evaluator(local_ray):
    from qd.evaluation_ray import RayEvaluator

    ev = RayEvaluator(
        "hardmaze", SereneMLP((5, 5, 5, 2)), env_options={"episode_length": 150}, workers=2
    )
    yield ev
    ev.close()


def _genomes(n=30):
    return torch.randn(n, 63, generator=torch.Generator().manual_seed(5)).clamp(-5, 5)


def test_ray_equals_local_bit_for_bit(evaluator):
    local = LocalEvaluator(envs.make("hardmaze", episode_length=150), SereneMLP((5, 5, 5, 2)))
    want = local.evaluate(_genomes(), path=3)
    got = evaluator.evaluate(_genomes(), path=3)
    for name in ("fitness", "reward_area", "descriptor", "final_obs", "path"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    pids = ray.get([a.pid.remote() for a in evaluator.actors])
    assert len(set(pids)) == 2  # two separate worker processes


def test_killed_actor_is_replaced_and_nothing_lost(evaluator):
    want = evaluator.evaluate(_genomes())
    victim = evaluator.actors[0]
    killer = threading.Thread(target=lambda: (time.sleep(0.2), ray.kill(victim)))
    killer.start()
    got = evaluator.evaluate(_genomes())
    killer.join()
    assert evaluator.actors[0] is not victim or got is not None
    assert torch.equal(got.descriptor, want.descriptor)
    ray.kill(evaluator.actors[1])  # dead before the call
    again = evaluator.evaluate(_genomes())
    assert torch.equal(again.fitness, want.fitness)


def test_ns_run_with_ray_matches_local(tmp_path, local_ray):
    from qd.archive import Archive
    from qd.run import RunConfig, start

    folders = {}
    for kind in ("local", "ray"):
        config = RunConfig(
            algorithm="ns",
            env="hardmaze",
            out=str(tmp_path / kind),
            budget=500,
            env_options={"episode_length": 60},
            evaluator=kind,
            workers=2,
        )
        folders[kind] = start(config, progress=False)
    a = Archive.load(folders["local"] / "archive" / "novelty.safetensors")
    b = Archive.load(folders["ray"] / "archive" / "novelty.safetensors")
    assert torch.equal(a.genomes, b.genomes) and torch.equal(a.descriptors, b.descriptors)


def test_lockstep_seeds_on_ray_match_local(tmp_path, local_ray):
    """Lockstep seeds through Ray actors: each seed's rows reset with its own seed (point-trap
    with reset noise draws its start from the seed), as in the local lockstep run."""
    from qd.archive import Archive
    from qd.run import RunConfig, start

    folders = {}
    for kind in ("local", "ray"):
        config = RunConfig(
            algorithm="ns",
            env="point-trap",
            out=str(tmp_path / kind),
            budget=300,
            env_options={"episode_length": 20, "reset_noise": 0.1},
            evaluator=kind,
            workers=2,
        )
        folders[kind] = start(config, seeds=[0, 1], progress=False)
    for seed in (0, 1):
        a = Archive.load(folders["local"] / f"seed-{seed}" / "archive" / "novelty.safetensors")
        b = Archive.load(folders["ray"] / f"seed-{seed}" / "archive" / "novelty.safetensors")
        assert torch.equal(a.genomes, b.genomes) and torch.equal(a.descriptors, b.descriptors)
