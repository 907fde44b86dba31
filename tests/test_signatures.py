"""Trajectory signatures and log-signatures (qd.behaviour.signatures).

Values are compared with pysiglib (test-only reference; skipped when it is not installed) and
with a naive sequential Chen product written here from the definition, which always runs.
"""

import math

import pytest
import torch

from qd.behaviour import signature_algebra
from qd.behaviour.signatures import (
    SignatureSpace,
    logsignature,
    logsignature_size,
    lyndon_words,
    signature,
    signature_size,
)

F64 = {"dtype": torch.float64}


def random_paths(batch: int, steps: int, channels: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, channels, generator=gen, **F64).cumsum(1) * 0.5


def with_time(paths: torch.Tensor) -> torch.Tensor:
    batch, steps, _ = paths.shape
    time = torch.linspace(0, 1, steps, **F64).expand(batch, steps).unsqueeze(-1)
    return torch.cat([paths, time], dim=-1)


# --- naive reference from the definition -----------------------------------------------------


def levels_of(flat: torch.Tensor, channels: int, depth: int) -> list[torch.Tensor]:
    sizes = [channels**n for n in range(1, depth + 1)]
    return list(flat.split(sizes, dim=-1))


def tensor_product(a: list[torch.Tensor], b: list[torch.Tensor]) -> list[torch.Tensor]:
    """(1 + a) (x) (1 + b) - 1, truncated, for one path (1-D levels)."""
    out = []
    for n in range(1, len(a) + 1):
        level = a[n - 1] + b[n - 1]
        for k in range(1, n):
            level = level + torch.outer(a[k - 1], b[n - k - 1]).flatten()
        out.append(level)
    return out


def tensor_exp(v: torch.Tensor, depth: int) -> list[torch.Tensor]:
    levels, power = [], torch.ones(1, **F64)
    for n in range(1, depth + 1):
        power = torch.outer(power, v).flatten()
        levels.append(power / math.factorial(n))
    return levels


def naive_signature(path: torch.Tensor, depth: int) -> torch.Tensor:
    """Sequential Chen product of segment exponentials, one path [T, d]."""
    channels = path.shape[1]
    total = [torch.zeros(channels**n, **F64) for n in range(1, depth + 1)]
    for step in path.diff(dim=0):
        total = tensor_product(total, tensor_exp(step, depth))
    return torch.cat(total)


# --- values against references ---------------------------------------------------------------


@pytest.mark.parametrize("depth", [2, 5])
@pytest.mark.parametrize("time_channel", [False, True])
def test_signature_matches_pysiglib(depth, time_channel):
    pysiglib = pytest.importorskip("pysiglib")
    for channels in (2, 3):
        paths = random_paths(6, 30, channels, seed=depth + channels)
        ours = signature(paths, depth=depth, time_channel=time_channel)
        ref = pysiglib.sig(paths, depth, time_aug=time_channel)
        assert ours.shape == (6, signature_size(channels + time_channel, depth))
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("depth", [2, 5])
@pytest.mark.parametrize("time_channel", [False, True])
@pytest.mark.parametrize(("basis", "method"), [("words", 1), ("brackets", 2)])
def test_logsignature_matches_pysiglib(depth, time_channel, basis, method):
    # pysiglib method 1: tensor-log coefficients at Lyndon words (signatory's "words");
    # method 2: Lyndon basis, as iisignature.logsig's default (checked equal to iisignature 0.24).
    pysiglib = pytest.importorskip("pysiglib")
    for channels in (2, 3):
        paths = random_paths(6, 30, channels, seed=10 * depth + channels)
        ours = logsignature(paths, depth=depth, time_channel=time_channel, basis=basis)
        pysiglib.prepare_log_sig(channels, depth, method, time_aug=time_channel)
        ref = pysiglib.log_sig(paths, depth, method=method, time_aug=time_channel)
        assert ours.shape == (6, logsignature_size(channels + time_channel, depth))
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("time_channel", [False, True])
def test_signature_matches_naive_chen_product(time_channel):
    paths = random_paths(3, 12, 2, seed=3)
    ours = signature(paths, depth=4, time_channel=time_channel)
    full = with_time(paths) if time_channel else paths
    ref = torch.stack([naive_signature(p, 4) for p in full])
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_published_example_and_levy_area():
    # esig's documented example: stream2sig(stream, 2) = [1, 7, 5, 24.5, 19, 16, 12.5].
    stream = torch.tensor([[[1.0, 1.0], [3.0, 4.0], [5.0, 2.0], [8.0, 6.0]]], **F64)
    expected = torch.tensor([[7.0, 5.0, 24.5, 19.0, 16.0, 12.5]], **F64)
    torch.testing.assert_close(signature(stream, depth=2), expected)
    # Right then up: S^12 = 1, S^21 = 0, Levy area 1/2 = the one log-signature term at level 2.
    corner = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]], **F64)
    torch.testing.assert_close(
        signature(corner, depth=2), torch.tensor([[1.0, 1.0, 0.5, 1.0, 0.0, 0.5]], **F64)
    )
    torch.testing.assert_close(
        logsignature(corner, depth=2), torch.tensor([[1.0, 1.0, 0.5]], **F64)
    )


# --- algebraic properties --------------------------------------------------------------------


def test_chen_identity():
    depth, channels = 5, 3
    path = random_paths(1, 21, channels, seed=4)[0]
    first, second = path[:12], path[11:]  # second starts where first ends
    whole = signature(path[None], depth=depth)[0]
    a = levels_of(signature(first[None], depth=depth)[0], channels, depth)
    b = levels_of(signature(second[None], depth=depth)[0], channels, depth)
    torch.testing.assert_close(whole, torch.cat(tensor_product(a, b)), rtol=1e-10, atol=1e-10)


def test_reparametrisation_and_translation_invariance():
    paths = random_paths(4, 15, 2, seed=5)
    base = signature(paths, depth=5)
    repeated = torch.cat([paths[:, :7], paths[:, 6:7], paths[:, 6:7], paths[:, 7:]], dim=1)
    midpoint = 0.3 * paths[:, 3:4] + 0.7 * paths[:, 4:5]  # a point on segment 3 -> 4
    refined = torch.cat([paths[:, :4], midpoint, paths[:, 4:]], dim=1)
    for other in (repeated, refined, paths + torch.tensor([3.0, -2.0], **F64)):
        torch.testing.assert_close(signature(other, depth=5), base, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(
            logsignature(other, depth=5), logsignature(paths, depth=5), rtol=1e-10, atol=1e-10
        )


def test_straight_line_is_tensor_exponential_of_its_increment():
    start, increment = torch.tensor([0.5, -1.0, 2.0], **F64), torch.tensor([1.5, 0.3, -0.8], **F64)
    line = start + torch.linspace(0, 1, 9, **F64)[:, None] * increment
    torch.testing.assert_close(
        signature(line[None], depth=5)[0], torch.cat(tensor_exp(increment, 5)), rtol=1e-12, atol=0
    )
    # With time the line stays straight in (x, t); its log-signature is just the increment.
    with_t = torch.cat([increment, torch.ones(1, **F64)])
    torch.testing.assert_close(
        signature(line[None], depth=3, time_channel=True)[0], torch.cat(tensor_exp(with_t, 3))
    )
    log = logsignature(line[None], depth=4, time_channel=True, basis="brackets")[0]
    torch.testing.assert_close(log[:4], with_t)
    torch.testing.assert_close(log[4:], torch.zeros_like(log[4:]), rtol=0, atol=1e-12)


def test_constant_and_single_point_paths_have_zero_signature():
    for steps in (1, 5):
        paths = torch.full((2, steps, 3), 4.0, **F64)
        assert torch.equal(signature(paths, depth=3), torch.zeros(2, signature_size(3, 3), **F64))
        assert torch.equal(logsignature(paths, depth=3), torch.zeros(2, 14, **F64))
    time_only = signature(torch.zeros(1, 1, 2, **F64), depth=2, time_channel=True)
    assert torch.equal(time_only, torch.zeros(1, signature_size(3, 2), **F64))


# --- batching, dtype, device -----------------------------------------------------------------


def test_batch_equals_per_path_and_chunking(monkeypatch):
    paths = random_paths(7, 40, 2, seed=6)
    for fn in (signature, logsignature):
        batched = fn(paths, depth=4, time_channel=True)
        single = torch.cat([fn(p[None], depth=4, time_channel=True) for p in paths])
        torch.testing.assert_close(batched, single, rtol=1e-12, atol=1e-12)
        monkeypatch.setitem(signature_algebra._CHUNK_BYTES, "cpu", 1)  # one path per chunk
        torch.testing.assert_close(fn(paths, depth=4, time_channel=True), batched)
        monkeypatch.undo()


def test_dtypes_and_gradients():
    paths = random_paths(2, 10, 2, seed=7)
    single = signature(paths.float(), depth=3)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), signature(paths, depth=3), rtol=1e-4, atol=1e-4)
    ints = torch.arange(12).reshape(1, 6, 2) % 5
    assert signature(ints, depth=2).dtype == torch.get_default_dtype()
    leaf = paths[:, :6].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: logsignature(p, depth=3, time_channel=True, basis="brackets"), (leaf,)
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    paths = random_paths(50, 200, 2, seed=8)
    for fn in (signature, logsignature):
        cpu = fn(paths, depth=5, time_channel=True)
        gpu = fn(paths.cuda(), depth=5, time_channel=True)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-10)


# --- sizes and the space ---------------------------------------------------------------------


def test_sizes():
    assert signature_size(2, 2) == 6 and signature_size(3, 5) == 363
    assert signature_size(20, 2) == 420
    # Lyndon words over 2 letters by length: 2, 1, 2, 3, 6; over 3 letters: 3, 3, 8, 18, 48.
    assert logsignature_size(2, 5) == 14 and logsignature_size(3, 5) == 80
    assert logsignature_size(20, 2) == 20 + 190 and logsignature_size(1, 4) == 1
    for channels, depth in ((2, 5), (3, 4), (4, 3)):
        words = lyndon_words(channels, depth)
        assert len(words) == len(set(words)) == logsignature_size(channels, depth)
    assert lyndon_words(2, 3) == [(0,), (1,), (0, 1), (0, 0, 1), (0, 1, 1)]


def test_signature_space():
    paths = random_paths(5, 20, 2, seed=9)
    for space in (
        SignatureSpace(),
        SignatureSpace(depth=5, time_channel=True),
        SignatureSpace(depth=3, log=True),
        SignatureSpace(depth=5, log=True, time_channel=True, log_basis="brackets"),
    ):
        out = space.describe(paths)
        assert out.shape == (5, space.dim(2))
    assert SignatureSpace().dim(2) == 6 and SignatureSpace(time_channel=True).dim(2) == 12
    assert SignatureSpace(depth=5, log=True, time_channel=True).dim(2) == 80
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        SignatureSpace(depth=0)
    with pytest.raises(ValueError, match="unknown log-signature basis"):
        SignatureSpace(log=True, log_basis="hall")


# --- errors ----------------------------------------------------------------------------------


def test_errors_name_the_problem():
    paths = random_paths(2, 5, 2)
    with pytest.raises(ValueError, match=r"3-D tensor \[batch, length, channels\].*\(5, 2\)"):
        signature(paths[0], depth=2)
    with pytest.raises(ValueError, match="at least one step"):
        signature(paths[:, :0], depth=2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        signature(paths.numpy(), depth=2)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="depth must be an integer >= 1"):
            signature(paths, depth=bad)
        with pytest.raises(ValueError, match="depth must be an integer >= 1"):
            logsignature(paths, depth=bad)
    nan = paths.clone()
    nan[1, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN.*batch 1, step 3, channel 0"):
        signature(nan, depth=2)
    with pytest.raises(ValueError, match="NaN"):
        logsignature(nan, depth=2, time_channel=True)
    inf = paths.clone()
    inf[0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="infinite"):
        signature(inf, depth=2)
    with pytest.raises(ValueError, match="unknown log-signature basis"):
        logsignature(paths, depth=2, basis="hall")
    with pytest.raises(ValueError, match="use basis='words'"):
        logsignature(torch.zeros(1, 2, 20, **F64), depth=5, basis="brackets")
    with pytest.raises(ValueError, match="channels must be an integer >= 1"):
        signature_size(0, 2)


def test_signature_space_in_runs(tmp_path):
    import envs
    from qd.archive import Archive
    from qd.behaviour import make_space
    from qd.run import RunConfig, start

    spec = envs.make("hardmaze").spec
    # default: on the robot's (x, y) (the authors' positions); source=obs: on observations
    space = make_space("signature:depth=3,time=true,samples=40", spec)
    assert space.dim == signature_size(2 + 1, 3)
    assert space.recordings == {"path": 40}
    assert make_space("signature", spec).recordings == {"path": spec.episode_length}
    assert make_space("signature:log=true", spec).dim == logsignature_size(2, 2)
    obs = make_space("signature:depth=3,time=true,samples=40,source=obs", spec)
    assert obs.dim == signature_size(spec.obs_size + 1, 3)
    assert obs.recordings == {"trajectory": 40}
    for bad in ("signature:depth", "signature:order=2", "signature:log=maybe"):
        with pytest.raises(ValueError, match="signature option"):
            make_space(bad, spec)
    config = RunConfig(
        algorithm="ns",
        env="hardmaze",
        out=str(tmp_path / "sig"),
        budget=300,
        env_options={"episode_length": 30},
        algorithm_config={"space": "signature:depth=2,samples=10"},
    )
    folder = start(config, progress=False)
    archive = Archive.load(folder / "archive" / "novelty.safetensors")
    assert archive.descriptors.shape[1] == signature_size(2, 2)
    assert archive.field("ground_truth").shape[1] == 2  # metrics stay on the ground truth
