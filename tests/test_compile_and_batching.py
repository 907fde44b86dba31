import json

import pytest
import torch

import envs
from qd.evaluation import LocalEvaluator, auto_max_batch
from qd.policies import SereneMLP, serene_sizes


def _genomes(n=64):
    return torch.randn(n, 63, generator=torch.Generator().manual_seed(2)).clamp(-5, 5)


def _bit_equal(a, b):
    for name in ("fitness", "reward_area", "descriptor", "final_obs", "frames", "trajectory"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert torch.equal(x, y), name


COMPILED_ENVS = [
    ("hardmaze", {"episode_length": 9}),
    pytest.param("curling", {}, marks=pytest.mark.slow),
    pytest.param("billiard", {}, marks=pytest.mark.slow),
    ("redundant-arm", {}),
    pytest.param("point-trap", {"episode_length": 9}, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name, options", COMPILED_ENVS)
def test_exact_compiled_blocks_equal_eager_bit_for_bit(name, options):
    """Blocks of 4 compiled steps (+ single steps for the remainders and recording steps) give
    the eager outcomes bit for bit, for two batch sizes from one compile."""
    env = envs.make(name, **options)
    spec = env.spec
    policy = SereneMLP(serene_sizes(spec.obs_size, spec.action_size, env=name))
    genomes = torch.randn(13, policy.genome_size, generator=torch.Generator().manual_seed(3))
    eager = LocalEvaluator(env, policy)
    compiled = LocalEvaluator(env, policy, compile=True, compile_steps=4)
    for rows in (13, 6):
        record = {"trajectory": 3, "frames": 1}
        want = eager.evaluate(genomes[:rows], **record)
        got = compiled.evaluate(genomes[:rows], **record)
        assert compiled._blocks is not None  # really compiled, no eager fallback
        _bit_equal(got, want)


def test_fused_compiled_blocks_are_close_to_eager():
    """``compile_exact=False`` lets inductor fuse cos/tanh...: close to eager, not equal."""
    env = envs.make("hardmaze", episode_length=30)
    eager = LocalEvaluator(env, SereneMLP((5, 5, 5, 2))).evaluate(_genomes())
    compiled = LocalEvaluator(env, SereneMLP((5, 5, 5, 2)), compile=True, compile_exact=False)
    out = compiled.evaluate(_genomes())
    assert compiled._blocks is not None
    torch.testing.assert_close(out.descriptor, eager.descriptor, atol=1e-3, rtol=0)
    assert torch.equal(out.reward_area, eager.reward_area)


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    env = envs.make("hardmaze", episode_length=40)
    eager = LocalEvaluator(env, SereneMLP((5, 5, 5, 2))).evaluate(_genomes(8))
    evaluator = LocalEvaluator(env, SereneMLP((5, 5, 5, 2)), compile=True)
    with pytest.warns(UserWarning) as caught:
        out = evaluator.evaluate(_genomes(8))
    messages = [str(w.message) for w in caught]
    assert "running with the Python wrapper" in messages[0]
    assert "running with eager" in messages[1]
    assert evaluator._blocks is None
    assert torch.equal(out.descriptor, eager.descriptor)


def test_cpp_wrapper_failure_falls_back_to_the_python_wrapper(monkeypatch):
    """A C++ wrapper that does not build leaves the compiled blocks on the Python wrapper."""
    real_compile = torch.compile

    def picky(fn, **kwargs):
        if kwargs.get("options", {}).get("cpp_wrapper"):

            def run(*args):
                raise RuntimeError("no C++ wrapper here")

            return run
        return real_compile(fn, **kwargs)

    monkeypatch.setattr(torch, "compile", picky)
    env = envs.make("hardmaze", episode_length=9)
    eager = LocalEvaluator(env, SereneMLP((5, 5, 5, 2))).evaluate(_genomes(8))
    evaluator = LocalEvaluator(env, SereneMLP((5, 5, 5, 2)), compile=True, compile_steps=4)
    assert evaluator._blocks.cpp_wrapper  # the CPU default
    with pytest.warns(UserWarning, match="running with the Python wrapper"):
        out = evaluator.evaluate(_genomes(8))
    assert evaluator._blocks is not None and not evaluator._blocks.cpp_wrapper
    _bit_equal(out, eager)


def test_out_of_memory_halves_the_chunk(monkeypatch):
    env = envs.make("hardmaze", episode_length=20)
    ev = LocalEvaluator(env, SereneMLP((5, 5, 5, 2)), max_batch=16)
    real = ev._rollout

    def picky(genomes, *args):
        if genomes.shape[0] > 4:
            raise torch.OutOfMemoryError("simulated")
        return real(genomes, *args)

    monkeypatch.setattr(ev, "_rollout", picky)  # evaluate() retries smaller chunks
    with pytest.warns(UserWarning, match="max_batch halved"):
        out = ev.evaluate(_genomes(10))
    want = LocalEvaluator(env, SereneMLP((5, 5, 5, 2))).evaluate(_genomes(10))
    assert ev.max_batch == 4 and torch.equal(out.descriptor, want.descriptor)


def test_auto_max_batch():
    env = envs.make("hardmaze", episode_length=20)
    ev = LocalEvaluator(env, SereneMLP((5, 5, 5, 2)), max_batch="auto")
    assert 256 <= ev.max_batch <= 1 << 14
    assert auto_max_batch(env.spec, 63, torch.device("cpu")) == ev.max_batch
    with pytest.raises(ValueError, match="max_batch"):
        LocalEvaluator(env, SereneMLP((5, 5, 5, 2)), max_batch=0)


def test_run_setting_max_batch_auto():
    from qd.run import RunConfig, parse_overrides

    config = parse_overrides(RunConfig(algorithm="ns", env="hardmaze", out="x"), ["max_batch=auto"])
    assert config.max_batch == "auto"
    with pytest.raises(ValueError, match="max_batch"):
        parse_overrides(RunConfig(algorithm="ns", env="hardmaze", out="x"), ["max_batch=lots"])


def test_bench_rollout_cli_reports_ratios_against_eager(capsys):
    import json

    from qd.cli import main

    assert main(["bench", "rollout", "--steps", "10", "--batch", "4", "8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["batch"]) for r in rows] == [("eager", 4), ("eager", 8)]
    assert all(r["ratio_vs_eager"] == 1.0 and r["policy_steps_per_s"] > 0 for r in rows)


def test_run_config_compile_values():
    from qd.run import RunConfig

    for value in (False, True, "fused", "auto"):
        RunConfig(algorithm="ns", env="hardmaze", out="x", compile=value).validate()
    with pytest.raises(ValueError, match="compile"):
        RunConfig(algorithm="ns", env="hardmaze", out="x", compile="fast").validate()


def test_openmp_threads_sleep_while_waiting_unless_told_otherwise():
    import os
    import subprocess
    import sys

    code = "import qd, os; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "ACTIVE"


def test_run_threads_setting(tmp_path):
    import json

    from qd.cli import main
    from qd.run import RunConfig

    with pytest.raises(ValueError, match="threads"):
        RunConfig(algorithm="ns", env="hardmaze", out="x", threads=-1).validate()
    before = torch.get_num_threads()
    out = tmp_path / "run"
    args = ["run", "random", "--env", "point-trap", "--budget", "20", "--threads", "1"]
    try:
        assert main([*args, "--out", str(out), "--set", "env.episode_length=5"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert json.loads((out / "config.json").read_text())["threads"] == 1


def test_auto_compile_only_where_it_pays_and_is_checked_exact():
    from qd.run_config import RunConfig, compile_choice

    def choice(env="hardmaze", budget=100_000, device="cpu", compile="auto", length=2000):
        config = RunConfig(algorithm="ns", env=env, out="x", budget=budget, compile=compile)
        return compile_choice(config, length, device)

    assert choice() is True  # 2e8 policy-steps of a checked env on the CPU
    assert choice(budget=20_000) is False  # the demo: a compile would not pay
    config = RunConfig(algorithm="ns", env="hardmaze", out="x", budget=20_000)
    assert compile_choice(config, 2000, "cpu", searches=10) is True  # 10 lockstep seeds
    assert choice(device="cuda") is False  # exactness is checked on the CPU only
    assert choice(env="gym:MountainCar-v0", length=200, budget=10**6) is False
    assert choice(budget=20_000, compile="fused") == "fused"
    assert choice(compile=False) is False


def test_run_builds_the_evaluator_the_compile_setting_asks_for(tmp_path):
    from qd.run import RunConfig, make_evaluator

    env = envs.make("hardmaze", episode_length=10)
    policy = SereneMLP((5, 5, 5, 2))
    cpu = torch.device("cpu")

    def evaluator(compile, budget=1000, searches=1):
        config = RunConfig(algorithm="ns", env="hardmaze", out="x", compile=compile, budget=budget)
        return make_evaluator(config, env, policy, cpu, searches=searches)

    assert evaluator(False)._blocks is None
    assert evaluator(True)._blocks.exact and not evaluator("fused")._blocks.exact
    assert evaluator("auto")._blocks is None  # 1e4 policy-steps: eager
    assert evaluator("auto", budget=10**7)._blocks.exact  # 1e8 policy-steps: compiled
    assert evaluator("auto", budget=10**6, searches=10)._blocks is not None


def test_rollouts_run_on_their_own_thread_count_and_restore_it():
    env = envs.make("hardmaze", episode_length=3)
    seen = []
    step = env.step

    def spy(state, actions):
        seen.append(torch.get_num_threads())
        return step(state, actions)

    env.step = spy
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        LocalEvaluator(env, SereneMLP((5, 5, 5, 2))).evaluate(_genomes(4))
        assert seen == [1, 1, 1] and torch.get_num_threads() == 2
        seen.clear()
        LocalEvaluator(env, SereneMLP((5, 5, 5, 2)), rollout_threads=None).evaluate(_genomes(4))
        assert seen == [2, 2, 2]
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="rollout_threads"):
        LocalEvaluator(env, SereneMLP((5, 5, 5, 2)), rollout_threads=0)


def test_rollout_workers_split_large_chunks_with_the_same_outcomes(tmp_path):
    """Two workers step halves of a chunk at once; outcomes equal one thread's bit for bit."""
    env = envs.make("hardmaze", episode_length=20)
    policy = SereneMLP((5, 5, 5, 2))
    genomes = _genomes(600)
    one = LocalEvaluator(env, policy).evaluate(genomes, trajectory=2)
    evaluator = LocalEvaluator(env, policy, rollout_workers=2)
    first = evaluator.evaluate(genomes, trajectory=2)  # the first call runs in one thread
    assert evaluator._executor is None
    split = evaluator.evaluate(genomes, trajectory=2)
    assert evaluator._executor is not None  # really split among the workers
    _bit_equal(first, one)
    _bit_equal(split, one)
    small = evaluator.evaluate(genomes[:300])  # below 2 x WORKER_ROWS: one thread
    assert torch.equal(small.descriptor, one.descriptor[:300])
    evaluator.close()
    assert evaluator._executor is None
    with pytest.raises(ValueError, match="rollout_workers"):
        LocalEvaluator(env, policy, rollout_workers=0)


def test_run_setting_rollout_workers(tmp_path):
    from qd.cli import main

    out = tmp_path / "run"
    args = ["run", "ns", "--env", "hardmaze", "--budget", "600", "--rollout-workers", "2"]
    assert main([*args, "--set", "env.episode_length=20", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["rollout_workers"] == 2
    assert main(["run", "ns", "--env", "hardmaze", "--set", "rollout_workers=0"]) == 2


def test_exact_compile_calls_the_eager_kernels_directly():
    """The rerouted functions become ATen fallback calls in the generated code (no call of the
    Python-implemented opaque op), with the eager numbers."""
    from torch._inductor.utils import run_and_get_code

    from qd.compiled import compile_function

    def fn(x):
        return torch.tanh(torch.cos(x * 3.0) + torch.sin(x)) * 2.0

    x = torch.linspace(-20.0, 20.0, 1001)
    compiled = compile_function(fn, exact=True, dynamic=False)
    out, (code, *_) = run_and_get_code(compiled, x)
    assert torch.equal(out, fn(x))
    for name in ("cos", "sin", "tanh"):
        assert f"torch.ops.aten.{name}.default(" in code
        assert f"torch.ops.qdtorch_eager.{name}.default(" not in code


def test_compiled_blocks_mark_only_the_batch_dimension_dynamic():
    """The first call of a block marks dimension 0 of the batch's tensors (in lists and env
    state dataclasses) as dynamic, nothing else, so kernels keep the env's own sizes static."""
    from dataclasses import dataclass

    from qd.rollout import _mark_batch_dynamic

    @dataclass
    class State:
        pos: torch.Tensor
        t: torch.Tensor
        table: torch.Tensor

    batch = 6
    state = State(torch.zeros(batch, 2), torch.tensor(0), torch.zeros(5, batch))
    layers = [torch.zeros(batch, 3, 4), (torch.zeros(batch, 4),)]
    fitness = torch.zeros(batch)
    _mark_batch_dynamic((layers, state, fitness, {"alive": torch.ones(batch)}), batch)

    def marked(tensor):
        return getattr(tensor, "_dynamo_weak_dynamic_indices", set())

    assert all(marked(x) == {0} for x in (state.pos, layers[0], layers[1][0], fitness))
    assert not marked(state.t) and not marked(state.table)
