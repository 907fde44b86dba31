"""Pareto tools (non-dominated sort, crowding distance, local competition) and the two
novelty-based multi-objective baselines ``nslc`` and ``nsga2``."""

import json
import math
import shutil

import pytest
import torch

from qd.algorithms import lookup
from qd.algorithms.nslc import NSGA2, NSLC, NSGA2Config, NSLCConfig
from qd.algorithms.pareto import (
    crowding_distance,
    dominates,
    fronts,
    local_competition,
    non_dominated_sort,
    nsga2_order,
    nsga2_select,
)
from qd.archive import Archive, InsertionRule
from qd.cli import main
from qd.run import RunConfig, start

INF = math.inf

# (1, 5) (2, 4) (3, 3) | (1, 3) dominated by the first three | (2, 4) a copy of point 1 |
# (0, 0) dominated by everything | (3, 1) dominated by (3, 3) only (tie on the first objective)
POINTS = torch.tensor([[1, 5], [2, 4], [3, 3], [1, 3], [2, 4], [0, 0], [3, 1]], dtype=torch.float64)


def test_dominance_and_fronts_by_hand():
    dom = dominates(POINTS)
    assert dom[0, 3] and dom[2, 6] and not dom[6, 2]  # equal on one objective, better on other
    assert not dom[1, 4] and not dom[4, 1]  # copies do not dominate each other
    assert not dom.diagonal().any()
    ranks = non_dominated_sort(POINTS)
    assert ranks.tolist() == [0, 0, 0, 1, 0, 2, 1]
    assert [f.tolist() for f in fronts(ranks)] == [[0, 1, 2, 4], [3, 6], [5]]


def test_crowding_distance_by_hand():
    # Front 0, distinct points (1,5) (2,4) (3,3): objective 0 range 2 -> (2,4) gets (3-1)/2 = 1;
    # objective 1 range 2 -> (2,4) gets (5-3)/2 = 1; the extremes get inf; the later copy of
    # (2,4) gets 0. Front 1 has two points (both extremes), front 2 a single point: inf.
    assert crowding_distance(POINTS).tolist() == [INF, 2.0, INF, INF, 0.0, INF, INF]


def test_crowding_distance_on_a_front_of_five():
    front = torch.tensor([[0, 10], [1, 9], [1.5, 8.5], [2, 8], [10, 0]], dtype=torch.float64)
    # objective 0 (range 10): (1.5-0)/10, (2-1)/10, (10-1.5)/10; objective 1 the same by symmetry
    expected = [INF, 0.3, 0.2, 1.7, INF]
    assert crowding_distance(front).tolist() == pytest.approx(expected)
    # A constant third objective adds nothing.
    flat = torch.cat([front, torch.zeros(5, 1, dtype=torch.float64)], 1)
    assert crowding_distance(flat).tolist() == pytest.approx(expected)


def test_crowding_distance_degenerate_cases():
    same = torch.ones(4, 2)
    assert non_dominated_sort(same).tolist() == [0, 0, 0, 0]
    assert crowding_distance(same).tolist() == [INF, 0.0, 0.0, 0.0]  # the first copy only
    assert non_dominated_sort(torch.zeros(0, 2)).tolist() == []
    assert crowding_distance(torch.zeros(0, 2)).tolist() == []
    with pytest.raises(ValueError, match="finite"):
        non_dominated_sort(torch.tensor([[0.0, math.nan]]))
    # A single-objective problem: fronts are the distinct values, best first.
    one = torch.tensor([[3.0], [1.0], [3.0], [2.0]])
    assert non_dominated_sort(one).tolist() == [0, 2, 0, 1]


def test_selection_takes_whole_fronts_then_cuts_the_last_by_crowding():
    line = [[0, 10], [1, 9], [1.5, 8.5], [2, 8], [10, 0]]  # rows 1..5, crowding as above
    pts = torch.tensor([[11, 11], *line, [0.5, 0.5], [0, 0]], dtype=torch.float64)
    order, ranks, _ = nsga2_order(pts)
    assert ranks.tolist() == [0, 1, 1, 1, 1, 1, 2, 3]
    assert order.tolist() == [0, 1, 5, 4, 2, 3, 6, 7]  # inf, inf (lower row first), 1.7, 0.3...
    assert nsga2_select(pts, 2).tolist() == [0, 1]
    assert nsga2_select(pts, 4).tolist() == [0, 1, 5, 4]
    assert nsga2_select(pts, 7).tolist() == [0, 1, 5, 4, 2, 3, 6]
    assert nsga2_select(pts, 20).tolist() == order.tolist()
    assert nsga2_select(POINTS, 5).tolist() == [0, 2, 1, 4, 3]  # copy (2,4) last in front 0


def _reference_sort(points: list[tuple[float, ...]]) -> list[int]:
    """Front peeling by definition (slow, obviously right)."""

    def dom(a, b):
        pairs = list(zip(a, b, strict=True))
        return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)

    ranks, left, rank = [None] * len(points), set(range(len(points))), 0
    while left:
        front = {i for i in left if not any(dom(points[j], points[i]) for j in left)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def _reference_crowding(points, ranks) -> list[float]:
    """The documented crowding rules, one front and one objective at a time."""
    out = [0.0] * len(points)
    seen = {}
    for i, p in enumerate(points):
        seen.setdefault(tuple(p), i)
    for r in set(ranks):
        members = [i for i in range(len(points)) if ranks[i] == r and seen[tuple(points[i])] == i]
        if len(members) == 1:
            out[members[0]] = INF
            continue
        for j in range(len(points[0])):
            srt = sorted(members, key=lambda i: (points[i][j], i))
            width = points[srt[-1]][j] - points[srt[0]][j]
            if width == 0:
                continue
            out[srt[0]] = out[srt[-1]] = INF
            for a, b, c in zip(srt, srt[1:], srt[2:], strict=False):
                out[b] += (points[c][j] - points[a][j]) / width
    return out


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_sort_and_crowding_match_the_definitions(seed):
    g = torch.Generator().manual_seed(seed)
    m = 2 if seed < 3 else 3
    pts = torch.randint(0, 6, (60, m), generator=g).double()  # many ties and copies
    ranks = non_dominated_sort(pts)
    plain = pts.tolist()
    assert ranks.tolist() == _reference_sort(plain)
    expected = _reference_crowding(plain, ranks.tolist())
    assert crowding_distance(pts).tolist() == pytest.approx(expected)


def test_fronts_match_evotorch():
    core = pytest.importorskip("evotorch.core")
    ranker = getattr(core, "_compute_pareto_ranks", None)
    if ranker is None:
        pytest.skip("evotorch's private front ranking moved")
    pts = torch.rand(200, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(non_dominated_sort(pts), ranker(pts, False)[0])


def test_local_competition_by_hand():
    ref = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    ref_rew = torch.tensor([0.5, 0.0, 1.0, 0.0])
    queries = torch.tensor([[1.4], [9.0]])
    rew = torch.tensor([0.6, 0.0])
    # (1.4): nearest 2 are 1.0 (reward 0, beaten) and 2.0 (reward 1); (9): 10.0 (reward 0, a
    # tie is not a win) and 2.0 (reward 1).
    assert local_competition(queries, rew, ref, ref_rew, 2).tolist() == [1, 0]
    # Equidistant neighbours: the lower reference row wins the k-th place.
    mid = torch.tensor([[0.5]])
    assert local_competition(mid, torch.tensor([0.2]), ref, ref_rew, 1).tolist() == [0]
    flipped = local_competition(mid, torch.tensor([0.2]), ref.flip(0), ref_rew.flip(0), 1)
    assert flipped.tolist() == [1]
    # Self is not a neighbour; fewer than k others: all of them.
    own = local_competition(ref, ref_rew, ref, ref_rew, 10, self_index=torch.arange(4))
    assert own.tolist() == [2, 0, 3, 0]
    assert local_competition(queries, rew, ref, ref_rew, 2).dtype == torch.long


def test_local_competition_matches_the_definition_with_ties():
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        ref = torch.randint(0, 4, (50, 2), generator=g).float()  # many equal distances
        rew = torch.randint(0, 3, (50,), generator=g).float()
        k = int(torch.randint(1, 12, (1,), generator=g))
        got = local_competition(ref[:20], rew[:20], ref, rew, k, self_index=torch.arange(20))
        expected = []
        for i in range(20):
            dist = sorted((float((ref[j] - ref[i]).norm()), j) for j in range(50) if j != i)
            expected.append(sum(1 for _, j in dist[:k] if rew[j] < rew[i]))
        assert got.tolist() == expected


def test_local_competition_agrees_with_the_archive_rule():
    """Against the archive only (no self, no ties) it is the archive's own NSLC count."""
    g = torch.Generator().manual_seed(1)
    archive = Archive(
        solution_dim=3, measure_dim=2, k_neighbors=5, insertion=InsertionRule("local_competition")
    )
    archive.add(torch.rand(40, 3, generator=g), torch.rand(40, generator=g), torch.rand(40, 2))
    before_d, before_o = archive.descriptors.clone(), archive.objectives.clone()
    cand_d, cand_o = torch.rand(12, 2, generator=g), torch.rand(12, generator=g)
    info = archive.add(torch.rand(12, 3, generator=g), cand_o, cand_d)
    ours = local_competition(cand_d, cand_o, before_d, before_o, 5)
    assert ours.tolist() == info["local_competition"].tolist()


def _algo(cls, config_cls, **cfg):
    return cls(config_cls(**cfg), genome_size=2, measure_dim=1, env_spec={"descriptor_size": 1})


def _fill(algo, measures, objectives):
    n = len(measures)
    algo.archive.add(
        torch.zeros(n, 2),
        torch.tensor(objectives),
        torch.tensor(measures),
        ground_truth=torch.tensor(measures),
        reward_area=torch.full((n,), -1),
    )


def _union(measures, objectives):
    m = torch.tensor(measures)
    n = len(m)
    return {
        "solution": torch.zeros(n, 2),
        "objective": torch.tensor(objectives),
        "measures": m,
        "ground_truth": m,
        "reward_area": torch.full((n,), -1),
    }


def test_nslc_selection_by_hand():
    nslc = _algo(NSLC, NSLCConfig, pop_size=2, k_neighbors=2, archive_rule="top_novelty")
    _fill(nslc, [[0.0], [1.0], [2.0], [10.0]], [0.5, 0.0, 1.0, 0.0])
    union = _union([[1.4], [9.0], [5.0]], [0.6, 0.0, 0.3])
    # Reference set = archive + union, self excluded, k = 2:
    # x (1.4): 1.0 (r 0) and 2.0 (r 1) -> LC 1; y (9): 10 (r 0) and 5 (r 0.3) -> LC 0;
    # w (5): 2.0 (r 1) and 1.4 (r 0.6) -> LC 0. Objectives (novelty, LC): x (1, 1), y (2, 0),
    # w (3, 0): w dominates y, so the population is {x, w} (NS would take w and y).
    chosen, info = nslc._select_survivors(union, torch.tensor([1.0, 2.0, 3.0]))
    assert chosen.tolist() == [0, 2]
    assert info["front0_size"] == 2 and info["fronts_used"] == 1
    assert info["local_competition_max"] == 1 and info["local_competition_mean"] == 0.5


def test_nsga2_selection_by_hand_and_reduces_to_ns_without_rewards():
    nsga2 = _algo(NSGA2, NSGA2Config, pop_size=2)
    union = _union([[1.4], [9.0], [5.0]], [0.6, 0.7, 0.3])
    # (novelty, reward): x (1, .6), y (2, .7), w (3, .3): y dominates x -> {y, w}.
    chosen, info = nsga2._select_survivors(union, torch.tensor([1.0, 2.0, 3.0]))
    assert chosen.tolist() == [1, 2] and info["front0_size"] == 2
    # Equal rewards everywhere: fronts are novelty levels, selection = NS's truncation.
    nsga2 = _algo(NSGA2, NSGA2Config, pop_size=50)
    novelty = torch.rand(150, generator=torch.Generator().manual_seed(3))
    zeros = _union(torch.rand(150, 1).tolist(), [0.0] * 150)
    chosen, _ = nsga2._select_survivors(zeros, novelty)
    assert chosen.tolist() == torch.sort(novelty, descending=True).indices[:50].tolist()


def test_registered():
    assert (lookup("nslc").config, lookup("nslc").algorithm) == (NSLCConfig, NSLC)
    assert (lookup("nsga2").config, lookup("nsga2").algorithm) == (NSGA2Config, NSGA2)
    assert lookup("ns").config is not NSLCConfig


@pytest.mark.parametrize("algorithm", ["nslc", "nsga2"])
def test_run_spends_the_budget_and_resumes_exactly(tmp_path, algorithm):
    config = RunConfig(
        algorithm=algorithm,
        env="hardmaze",
        out=str(tmp_path / "ref"),
        budget=700,
        checkpoint_every=300,
        env_options={"episode_length": 50},
    )
    ref = start(config, progress=False)
    lines = [json.loads(x) for x in (ref / "metrics.jsonl").read_text().splitlines()]
    assert [x["evaluations"] for x in lines] == [100, 300, 500, 700]
    assert "front0_size" in lines[-1] and "novelty_mean" in lines[-1]
    if algorithm == "nslc":
        assert "local_competition_mean" in lines[-1]
    # Runs are deterministic: a copy of the finished run, cut back to its first checkpoint.
    cut = shutil.copytree(ref, tmp_path / "cut")  # `--resume` takes the folder it is given
    checkpoints = sorted((cut / "checkpoints").iterdir())
    assert [int(p.name) for p in checkpoints] == [300, 700]
    shutil.rmtree(cut / "archive")
    shutil.rmtree(checkpoints[-1])
    assert main(["run", "--resume", str(cut), "--no-progress"]) == 0
    again = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [x["evaluations"] for x in again] == [100, 300, 500, 700]
    assert [x["front0_size"] for x in again] == [x["front0_size"] for x in lines]
    for name in ("novelty", "population"):
        a = Archive.load(ref / "archive" / f"{name}.safetensors")
        b = Archive.load(cut / "archive" / f"{name}.safetensors")
        assert torch.equal(a.genomes, b.genomes) and torch.equal(a.objectives, b.objectives), name
        assert torch.equal(a.descriptors, b.descriptors), name
    # 5 offspring archived per generation after the initial one (NS archives offspring only)
    assert len(Archive.load(ref / "archive" / "novelty.safetensors")) == 3 * 5
    assert len(Archive.load(ref / "archive" / "population.safetensors")) == 100
