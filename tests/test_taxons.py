"""TAXONS and its variants: learned space, training schedule, re-encoding, selection, resume."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import envs
from qd.algorithms.taxons import TaxonsConfig, select_by
from qd.archive import Archive
from qd.behaviour import AutoencoderSpace, make_space
from qd.cli import main
from qd.run import Run, RunConfig, start

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"chunk_size": 400, "ae_max_epochs": 2}
CURLING = {"episode_length": 60}


def _config(tmp_path, name, algorithm="taxons", budget=1200, **extra):
    return RunConfig(
        algorithm=algorithm,
        env="curling",
        out=str(tmp_path / name),
        budget=budget,
        checkpoint_every=400,
        env_options=dict(CURLING),
        algorithm_config={**SMALL, **extra},
    )


def test_space_from_name_and_errors():
    spec = envs.make("curling").spec
    space = make_space("autoencoder:latent=4,frames=2", spec, seed=1)
    assert isinstance(space, AutoencoderSpace)
    assert space.dim == 8 and space.recordings == {"frames": 2}
    with pytest.raises(ValueError, match="autoencoder option"):
        make_space("autoencoder:depth=3", spec)
    with pytest.raises(ValueError, match="space must be autoencoder"):
        TaxonsConfig(space="ground_truth")
    with pytest.raises(ValueError, match="selection"):
        TaxonsConfig(selection="best")


def test_space_state_round_trip():
    frames = torch.randint(0, 255, (12, 1, 64, 64, 3), dtype=torch.uint8)
    a = AutoencoderSpace(latent_dim=3, seed=0)
    a.fit(frames, TaxonsConfig(ae_max_epochs=1).training_config())
    b = AutoencoderSpace(latent_dim=3, seed=5)
    b.load_state_tensors(a.state_tensors())
    za, sa = a.describe_frames(frames)
    zb, sb = b.describe_frames(frames)
    assert torch.equal(za, zb) and torch.equal(sa, sb) and b.trainings == 1
    # the Adam moments carried over: one more training step gives the same weights
    a.fit(frames, TaxonsConfig(ae_max_epochs=1).training_config())
    b.fit(frames, TaxonsConfig(ae_max_epochs=1).training_config())
    assert torch.equal(a.describe_frames(frames)[0], b.describe_frames(frames)[0])


def test_select_by_criteria():
    novelty = torch.tensor([0.1, 0.9, 0.5, 0.3])
    surprise = torch.tensor([0.8, 0.1, 0.2, 0.9])
    assert select_by("novelty", novelty, surprise, 2, True)[0].tolist() == [1, 2]
    assert select_by("surprise", novelty, surprise, 2, True)[0].tolist() == [3, 0]
    assert select_by("random", novelty, surprise, 2, True)[1] == "novelty"
    assert select_by("random", novelty, surprise, 2, False)[1] == "surprise"
    # (0.9, 0.1), (0.3, 0.9), (0.5, 0.2) are non-dominated; (0.1, 0.8) is dominated by (0.3, 0.9)
    kept, name = select_by("pareto", novelty, surprise, 3, True)
    assert name == "pareto" and sorted(kept.tolist()) == [1, 2, 3]


def test_taxons_trains_on_schedule_and_reembeds(tmp_path):
    run = Run(_config(tmp_path, "t"))
    algo = run.algorithm
    assert run.recordings == {"frames": 1}
    lines = []
    before = None
    while run.evaluations < run.config.budget:
        if run.evaluations == 300:  # after the first offspring, before the first training
            before = algo.archive.descriptors.clone()
            count_before = len(algo.archive)
        lines.append(run.step())
    trained = [line for line in lines if "ae_epochs" in line]
    # generations end at 100, 300, 500, ..., 1100, 1200 evaluations; chunks of 400: trainings
    # once chunks 1 (at 500) and 3 (at 1200) are complete
    assert [line["evaluations"] for line in trained] == [500, 1200]
    assert all(line["ae_epochs"] == 2 for line in trained)
    assert trained[0]["ae_images"] >= 10 + 100  # archive + population (+ dropped offspring)
    # the archive's first rows were re-described (same count, new descriptors)
    # offspring only are archived: 5 per generation after the initial population
    assert len(algo.archive) == 5 * (len(lines) - 1) and count_before == 5
    assert not torch.allclose(algo.archive.descriptors[:5], before)
    # stored descriptors equal what the current AE says about the stored frames
    z, s = algo.space.describe_frames(algo.archive.field("frames"))
    assert torch.allclose(algo.archive.descriptors, z) and torch.allclose(
        algo.archive.field("surprise"), s
    )
    last = lines[-1]
    assert {"surprise_mean", "selection", "ae_time_s", "coverage", "coverage_archive"} <= set(last)
    assert last["ae_trainings"] == 2
    assert algo.archive.field("frames").dtype == torch.uint8


def test_training_set_is_archive_population_and_dropped_offspring(tmp_path):
    run = Run(_config(tmp_path, "t", budget=400))
    algo = run.algorithm
    run.step()
    run.step()
    frames = algo.training_frames()
    # 5 archived (offspring only) + 100 in the population + the offspring it did not keep
    assert len(frames) == 5 + 100 + len(algo._pending_frames)
    assert len(algo._pending_frames) == 200 - (
        100
        - sum(  # offspring not kept
            1 for i in algo.last_selection.tolist() if i < 100
        )
    )


@pytest.mark.parametrize("algorithm", ["taxo-n", "taxo-s", "nt", "taxons-p"])
def test_variants_run(tmp_path, algorithm):
    folder = start(_config(tmp_path, algorithm, algorithm=algorithm, budget=800), progress=False)
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    expected = {"taxo-n": "novelty", "taxo-s": "surprise", "nt": "novelty", "taxons-p": "pareto"}
    assert {line["selection"] for line in lines} == {expected[algorithm]}
    if algorithm == "nt":  # never trained, novelty only (the authors' NT; issue 17)
        assert lines[-1]["ae_trainings"] == 0
    archive = Archive.load(folder / "archive" / "novelty.safetensors")
    assert archive.field("frames").shape[1:] == (1, 64, 64, 3)


def test_taxons_resumes_exactly(tmp_path):
    ref = start(_config(tmp_path, "ref"), progress=False)
    cut = start(_config(tmp_path, "cut"), progress=False)
    checkpoints = sorted((cut / "checkpoints").iterdir())
    shutil.rmtree(cut / "archive")
    shutil.rmtree(checkpoints[-1])
    assert main(["run", "--resume", str(cut), "--no-progress"]) == 0
    for name in ("novelty", "population"):
        a = Archive.load(ref / "archive" / f"{name}.safetensors")
        b = Archive.load(cut / "archive" / f"{name}.safetensors")
        assert torch.equal(a.genomes, b.genomes), name
        assert torch.equal(a.descriptors, b.descriptors), name


def test_multi_frame_taxons(tmp_path):
    folder = start(
        _config(tmp_path, "mf", budget=400, space="autoencoder:latent=5,frames=3"),
        progress=False,
    )
    archive = Archive.load(folder / "archive" / "novelty.safetensors")
    assert archive.descriptors.shape[1] == 15
    assert archive.field("frames").shape[1:] == (3, 64, 64, 3)


# -- STAX ---------------------------------------------------------------------------------------
def _stax_config(tmp_path, name, algorithm="stax", budget=2400, **extra):
    return RunConfig(
        algorithm=algorithm,
        env="curling",
        out=str(tmp_path / name),
        budget=budget,
        checkpoint_every=400,
        env_options={"episode_length": 120},
        algorithm_config={**SMALL, **extra},
    )


def _force_rewards(run, threshold: float = 0.02):
    """Make a short-episode Curling run rewarding: reward = ball travel beyond a threshold."""
    env = run.env
    original = env.reward

    def reward(state):
        moved = (state.pos - env.reset(len(state.pos), device=state.pos.device).pos).norm(dim=1)
        return torch.where(moved > threshold, moved, torch.zeros_like(moved)) + 0 * original(state)

    env.reward = reward


def test_stax_reembeds_everything_and_keeps_counts(tmp_path):
    run = Run(_stax_config(tmp_path, "s"))
    _force_rewards(run)
    algo = run.algorithm
    while run.evaluations < run.config.budget and not (algo.emitters and len(algo.reward_archive)):
        run.step()
    assert algo.emitters and len(algo.reward_archive), "test setup: emitters should exist"
    counts = {name: len(a) for name, a in algo.archives.items()}
    assert counts["ancestors"] == len(algo.emitters)
    ancestors_before = algo.ancestors.descriptors.clone()
    reward_before = algo.reward_archive.descriptors.clone()
    info = algo.retrain()
    assert info["ae_epochs"] == 2 and info["reembed_time_s"] >= 0
    assert {name: len(a) for name, a in algo.archives.items()} == counts
    assert not torch.allclose(algo.reward_archive.descriptors, reward_before)
    assert not torch.allclose(algo.ancestors.descriptors, ancestors_before)
    # every stored descriptor (candidates, emitter ancestors and buffers included) equals the
    # AE's description of the stored frames
    assert {"candidates", "ancestors", "buffers"} <= set(algo.archives)
    for archive in algo.archives.values():
        if len(archive):
            z, s = algo.space.describe_frames(archive.field("frames"))
            assert torch.allclose(archive.descriptors, z), archive.name
            assert torch.allclose(archive.field("surprise"), s), archive.name


def test_stax_variants_and_errors(tmp_path):
    with pytest.raises(ValueError, match="emitter_type"):
        from qd.algorithms.stax import StaxConfig

        StaxConfig(emitter_type="novelty")
    for algorithm in ("stax-p", "stax-nt"):
        folder = start(_stax_config(tmp_path, algorithm, algorithm, budget=800), progress=False)
        line = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
        assert "surprise_mean" in json.dumps(
            [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        )
        assert line["ae_trainings"] == (0 if algorithm == "stax-nt" else 1)
        reward = Archive.load(folder / "archive" / "reward.safetensors")
        assert reward.field("frames").dtype == torch.uint8


def test_stax_resumes_exactly(tmp_path):
    ref = start(_stax_config(tmp_path, "ref", budget=1600), progress=False)
    cut = start(_stax_config(tmp_path, "cut", budget=1600), progress=False)
    checkpoints = sorted((cut / "checkpoints").iterdir())
    shutil.rmtree(cut / "archive")
    shutil.rmtree(checkpoints[-1])
    assert main(["run", "--resume", str(cut), "--no-progress"]) == 0
    for name in ("novelty", "population", "reward"):
        a = Archive.load(ref / "archive" / f"{name}.safetensors")
        b = Archive.load(cut / "archive" / f"{name}.safetensors")
        assert torch.equal(a.genomes, b.genomes), name
        assert torch.equal(a.descriptors, b.descriptors), name


def test_hardmaze_render_radius_option():
    from types import SimpleNamespace

    from envs.hardmaze import HardMaze

    state = SimpleNamespace(x=torch.tensor([300.0]), y=torch.tensor([300.0]))

    def robot_pixels(colour, **options):
        colour = torch.tensor(colour, dtype=torch.uint8)
        return int((HardMaze(**options).render(state) == colour).all(-1).sum())

    blue, red = (0, 0, 255), (220, 30, 30)
    assert robot_pixels(blue, render_radius=30) < robot_pixels(blue, render_radius=90)
    legacy = envs.make("hardmaze", render_style="legacy").render(state)
    default = int((legacy == torch.tensor(red, dtype=torch.uint8)).all(-1).sum())
    small = robot_pixels(red, render_style="legacy", render_radius=10)
    assert 0 < small < robot_pixels(red, render_style="legacy", render_radius=30) < default
    assert default == robot_pixels(red, render_style="legacy", render_radius=90)
