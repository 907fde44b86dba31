"""Your own env and behaviour space: references, --import, entry points, run / resume / read."""

import json
import sys
from dataclasses import dataclass

import pytest
import torch

import envs
from envs.plugins import ImportRefused
from qd.cli import main
from qd.evaluation import Outcomes
from qd.run import RunConfig, resume, start

pytestmark = pytest.mark.usefixtures("one_thread")

USER_MODULE = '''
from dataclasses import dataclass

import torch

import envs
from envs.base import EnvSpec


@dataclass
class State:
    pos: torch.Tensor
    t: int


class Drift:
    """Point pushed by its actions in [-1, 1]^2 (episode_length steps)."""

    def __init__(self, *, episode_length=10, speed=0.1):
        self.speed = speed
        self.spec = EnvSpec(
            name="drift", obs_size=2, action_size=2, episode_length=episode_length,
            descriptor_size=2, descriptor_low=(-1.0, -1.0), descriptor_high=(1.0, 1.0),
            grid_shape=(10, 10), reward_areas=0,
            options={"episode_length": episode_length, "speed": speed},
        )

    def reset(self, batch_size, *, device="cpu", generator=None):
        return State(torch.zeros(batch_size, 2, device=device), 0)

    def step(self, state, actions):
        return State((state.pos + self.speed * actions).clamp(-1, 1), state.t + 1)

    def observe(self, state):
        return state.pos

    def reward(self, state):
        return -state.pos.norm(dim=1)

    def reward_area(self, state):
        return torch.full((state.pos.shape[0],), -1, dtype=torch.long)

    def descriptor(self, state):
        return state.pos

    def done(self, state):
        return torch.full((state.pos.shape[0],), state.t >= self.spec.episode_length)

    def render(self, state):
        return torch.zeros(state.pos.shape[0], 64, 64, 3, dtype=torch.uint8)

    def background(self):
        import numpy as np

        return np.full((64, 64, 3), 240, dtype=np.uint8)

    def goal_circles(self):
        return []


def make_env(**options):
    return Drift(**options)


@dataclass(frozen=True)
class MeanPath:
    points: int = 5

    @property
    def dim(self):
        return 2

    @property
    def recordings(self):
        return {"path": self.points}

    def describe(self, outcomes):
        return outcomes.path.mean(1)

'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module ``qdtest_user`` (env factory and space) on the import path; and
    ``qdtest_register``, which registers the env as ``qdtest-drift`` when imported."""
    (tmp_path / "qdtest_user.py").write_text(USER_MODULE)
    (tmp_path / "qdtest_register.py").write_text(
        "import envs\nfrom qdtest_user import make_env\n\nenvs.register('qdtest-drift', make_env)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("qdtest_user", "qdtest_register"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delitem(envs._REGISTRY, "qdtest-drift", raising=False)
    yield tmp_path
    envs._REGISTRY.pop("qdtest-drift", None)


def test_reference_build_and_read_only_refusal(user_module):
    env = envs.make("qdtest_user:make_env", episode_length=4, speed=0.2)
    assert env.spec.episode_length == 4 and env.speed == 0.2
    with pytest.raises(ImportRefused, match="add --import qdtest_user"):
        envs.build("qdtest_user:make_env", {}, allow_import=())
    assert envs.build("qdtest_user:make_env", {}, allow_import=["qdtest_user"]).speed == 0.1
    with pytest.raises(KeyError, match="has no attribute 'nothing'"):
        envs.make("qdtest_user:nothing")
    with pytest.raises(ImportError, match="cannot import module 'no_such_module_q'"):
        envs.make("no_such_module_q:make")
    with pytest.raises(KeyError, match=r"--import <module>"):
        envs.make("no-such-env")
    with pytest.raises(ImportRefused, match="add --import some_mod"):
        envs.build("gym:some_mod:Thing-v0", {}, allow_import=())


def test_entry_point_plugin(user_module, monkeypatch):
    dist = user_module / "qdtest_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: qdtest-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[qdtorch.envs]\nqdtest-plugin = qdtest_user:make_env\n")
    assert "qdtest-plugin" in envs.names()
    assert envs.make("qdtest-plugin", episode_length=3).spec.episode_length == 3


def _run(out, *extra):
    return main(
        [
            "run",
            "ns",
            *extra,
            "--budget",
            "300",
            "--set",
            "checkpoint_every=100",
            "--out",
            str(out),
            "--no-progress",
        ]
    )


def test_cli_run_resume_and_read_commands(user_module, tmp_path, capsys):
    out = tmp_path / "run"
    ref = ["--env", "qdtest_user:make_env", "--set", "env.episode_length=6"]
    space = ["--set", "space=qdtest_user:MeanPath", "--set", "space.points=3"]
    assert _run(out, *ref, *space) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["env"] == "qdtest_user:make_env" and config["space_options"] == {"points": 3}
    assert config["algorithm_config"]["space"] == "qdtest_user:MeanPath"
    before = (out / "archive" / "novelty.safetensors").read_bytes()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0  # rebuilt from config.json
    assert (out / "archive" / "novelty.safetensors").read_bytes() == before
    capsys.readouterr()
    # curves need only metrics.jsonl: no import, even of a module that is not on the path
    config["env"] = "not_installed_anywhere:make_env"
    (out / "config.json").write_text(json.dumps(config))
    assert main(["plot", str(out), "--kind", "coverage", "--out", str(tmp_path / "c.png")]) == 0
    config["env"] = "qdtest_user:make_env"
    (out / "config.json").write_text(json.dumps(config))
    png = str(tmp_path / "d.png")
    assert main(["plot", str(out), "--kind", "descriptors", "--out", png]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "add --import qdtest_user" in err and "Traceback" not in err
    assert (
        main(["plot", str(out), "--kind", "descriptors", "--import", "qdtest_user", "--out", png])
        == 0
    )
    replay = ["replay", str(out), "--best", "--out", str(tmp_path / "r.png")]
    assert main(replay) == 2
    assert main([*replay, "--import", "qdtest_user"]) == 0


def test_import_flag_is_recorded_and_named(user_module, tmp_path, capsys):
    out = tmp_path / "reg"
    assert _run(out, "--import", "qdtest_register", "--env", "qdtest-drift") == 0
    assert json.loads((out / "config.json").read_text())["imports"] == ["qdtest_register"]
    # a new process: nothing registered, nothing imported; resume imports the recorded module
    del envs._REGISTRY["qdtest-drift"]
    del sys.modules["qdtest_register"]
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    del envs._REGISTRY["qdtest-drift"]
    del sys.modules["qdtest_register"]
    capsys.readouterr()
    png = str(tmp_path / "d.png")
    assert main(["plot", str(out), "--kind", "descriptors", "--out", png]) == 2
    assert "add --import qdtest_register" in capsys.readouterr().err
    assert (
        main(
            ["plot", str(out), "--kind", "descriptors", "--import", "qdtest_register", "--out", png]
        )
        == 0
    )
    assert main(["run", "ns", "--env", "qdtest-drift", "--import", "no_such_mod_q"]) == 2
    assert "cannot import module 'no_such_mod_q'" in capsys.readouterr().err


@dataclass(frozen=True)
class FinalTwo:
    """A space defined in this test module (a dataclass, so it can be recorded)."""

    scale: float = 1.0

    @property
    def dim(self) -> int:
        return 2

    @property
    def recordings(self) -> dict:
        return {}

    def describe(self, outcomes: Outcomes) -> torch.Tensor:
        return outcomes.final_obs[:, :2] * self.scale


def test_start_accepts_a_space_class_or_instance(user_module, tmp_path):
    base = dict(algorithm="ns", env="qdtest_user:make_env", budget=300, checkpoint_every=100)
    a = start(RunConfig(out=str(tmp_path / "a"), algorithm_config={"space": FinalTwo}, **base))
    config = json.loads((a / "config.json").read_text())
    assert config["algorithm_config"]["space"] == f"{__name__}:FinalTwo"
    b = start(
        RunConfig(out=str(tmp_path / "b"), algorithm_config={"space": FinalTwo(2.0)}, **base),
        progress=False,
    )
    config = json.loads((b / "config.json").read_text())
    assert config["space_options"] == {"scale": 2.0}
    archive = (b / "archive" / "novelty.safetensors").read_bytes()
    assert resume(b, progress=False) == b
    assert (b / "archive" / "novelty.safetensors").read_bytes() == archive

    class Local:
        dim, recordings = 2, {}

        def describe(self, outcomes):
            return outcomes.final_obs

    with pytest.raises(ValueError, match="not a dataclass"):
        RunConfig(out=str(tmp_path / "c"), algorithm_config={"space": Local()}, **base)
    with pytest.raises(ValueError, match="top level of a module"):
        RunConfig(out=str(tmp_path / "c"), algorithm_config={"space": Local}, **base)
    with pytest.raises(ValueError, match="apply to module:Class spaces only"):
        start(RunConfig(out=str(tmp_path / "c"), space_options={"x": 1}, **base))
    assert not (tmp_path / "c").exists()


def test_big_coverage_grid_is_refused_before_allocating():
    from qd.metrics import Tracker

    spec = {"name": "big", "grid_shape": [50] * 9, "reward_areas": 0}
    with pytest.raises(ValueError, match=r"at most 1,000,000"):
        Tracker(spec)
