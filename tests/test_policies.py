import pytest
import torch

from qd.policies import SereneMLP, TanhMLP, make_policy


@pytest.mark.parametrize(
    "sizes, expected",
    [((5, 5, 5, 2), 63), ((6, 5, 5, 5, 2), 94), ((20, 5, 5, 20), 228), ((29, 10, 10, 10, 8), 574)],
)
def test_serene_genome_sizes(sizes, expected):
    assert SereneMLP(sizes).genome_size == expected


def test_tanh_genome_size():
    assert TanhMLP((6, 16, 16, 2)).genome_size == 6 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2
    assert TanhMLP((6, 16, 16, 2), output_bias=False).genome_size == 6 * 16 + 16 + 16 * 16 + 16 + 32


def test_flatten_roundtrip():
    p = SereneMLP((5, 5, 5, 2))
    g = torch.randn(7, p.genome_size)
    assert torch.equal(p.flatten(p.unflatten(g)), g)


def _manual_serene(genome, obs, sizes):
    pos, h = 0, obs
    for i, o in zip(sizes[:-1], sizes[1:], strict=True):
        w = genome[pos : pos + i * o].view(i, o)
        pos += i * o
        b = genome[pos]
        pos += 1
        h = 2 * torch.sigmoid(h @ w + b) - 1
    return h


def test_serene_forward_matches_per_individual():
    sizes = (5, 5, 5, 2)
    p = SereneMLP(sizes)
    g = torch.randn(16, p.genome_size)
    obs = torch.randn(16, 5)
    out = p(g, obs)
    for b in range(16):
        torch.testing.assert_close(out[b], _manual_serene(g[b], obs[b], sizes))
    assert out.abs().max() <= 1


def test_tanh_forward_matches_per_individual():
    p = TanhMLP((3, 4, 2))
    g = torch.randn(5, p.genome_size)
    obs = torch.randn(5, 3)
    out = p(g, obs)
    for b in range(5):
        w1 = g[b, :12].view(3, 4)
        b1 = g[b, 12:16]
        w2 = g[b, 16:24].view(4, 2)
        b2 = g[b, 24:26]
        want = torch.tanh(torch.tanh(obs[b] @ w1 + b1) @ w2 + b2)
        torch.testing.assert_close(out[b], want)


def test_wrong_genome_size_names_expected():
    p = SereneMLP((5, 5, 5, 2))
    with pytest.raises(ValueError, match=r"\[B, 63\]"):
        p(torch.zeros(3, 62), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        p.check(torch.full((2, 63), float("nan")))


def test_make_policy_unknown():
    with pytest.raises(KeyError, match="serene"):
        make_policy("nope", (1, 1))


def test_paper_policy_sizes_per_env():
    from qd.policies import serene_sizes

    def genes(env, obs, act):
        return SereneMLP(serene_sizes(obs, act, env=env)).genome_size

    assert genes("hardmaze", 5, 2) == 63
    assert genes("curling", 6, 2) == 94
    assert genes("redundant-arm", 20, 20) == 228
    assert serene_sizes(3, 1, [8], env="curling") == (3, 8, 1)  # explicit hidden layers win
