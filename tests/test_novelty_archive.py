import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from qd.archive import Archive, ArchiveFileError, InsertionRule, rbf_kernel, rbf_log_det
from qd.novelty import knn_novelty


def brute_novelty(queries, refs, k, self_index=None):
    """Reference: scikit-learn exact neighbours, dropping each query's own row."""
    nn = NearestNeighbors(n_neighbors=min(k + 1, len(refs)), algorithm="brute").fit(refs)
    dist, idx = nn.kneighbors(queries)
    out = []
    for q in range(len(queries)):
        keep = [
            d
            for d, i in zip(dist[q], idx[q], strict=True)
            if self_index is None or i != self_index[q]
        ]
        out.append(np.mean(keep[:k]))
    return np.array(out)


@pytest.mark.parametrize("dim", [2, 10])
@pytest.mark.parametrize("backend", ["brute", "kdtree"])
def test_novelty_matches_sklearn(dim, backend):
    rng = np.random.default_rng(dim)
    refs = rng.random((500, dim)).astype(np.float32)
    queries = rng.random((64, dim)).astype(np.float32)
    got = knn_novelty(torch.from_numpy(queries), torch.from_numpy(refs), 15, backend=backend)
    want = brute_novelty(queries, refs, 15)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["brute", "kdtree"])
def test_self_exclusion(backend):
    rng = np.random.default_rng(0)
    refs = rng.random((200, 2)).astype(np.float32)
    queries = refs[:50]
    own = torch.arange(50)
    got = knn_novelty(
        torch.from_numpy(queries), torch.from_numpy(refs), 15, self_index=own, backend=backend
    )
    want = brute_novelty(queries, refs, 15, self_index=own.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    # Without self-exclusion the own zero distance is counted: novelty is smaller.
    with_self = knn_novelty(torch.from_numpy(queries), torch.from_numpy(refs), 15, backend=backend)
    assert (with_self < got).all()
    # A query outside the reference set keeps its closest neighbour (the authors' bug drops it).
    outside = torch.tensor([[0.5, 0.5]])
    got_out = knn_novelty(outside, torch.from_numpy(refs), 15, backend=backend)
    np.testing.assert_allclose(got_out.numpy(), brute_novelty(outside.numpy(), refs, 15), rtol=1e-5)


def _archive(**kw):
    return Archive(solution_dim=3, measure_dim=2, k_neighbors=3, seed=0, **kw)


def test_archive_novelty_with_extra_references():
    rng = np.random.default_rng(1)
    archive = _archive()
    stored = rng.random((40, 2)).astype(np.float32)
    archive.add(np.zeros((40, 3)), np.zeros(40), stored)
    pop = rng.random((10, 2)).astype(np.float32)
    got = archive.novelty(
        torch.from_numpy(pop), reference=torch.from_numpy(pop), self_index=40 + torch.arange(10)
    )
    refs = np.concatenate([stored, pop])
    want = brute_novelty(pop, refs, 3, self_index=40 + np.arange(10))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_capacity_grows_and_keeps_rows():
    archive = _archive(initial_capacity=4)
    rows = torch.arange(30, dtype=torch.float32)
    for i in range(0, 30, 3):
        archive.add(torch.zeros(3, 3), rows[i : i + 3], torch.stack([rows[i : i + 3]] * 2, 1))
    assert len(archive) == 30 and archive.capacity == 32
    assert torch.equal(archive.objectives, rows)


def test_insertion_rules():
    measures = torch.tensor([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [9.0, 0.0]])
    random = _archive(insertion=InsertionRule("random", count=2))
    info = random.add(torch.zeros(4, 3), torch.zeros(4), measures)
    assert len(random) == 2 and (info["status"] == 2).sum() == 2
    top = _archive(insertion=InsertionRule("top_novelty", count=1))
    top.add(torch.zeros(2, 3), torch.zeros(2), measures[:2])
    info = top.add(torch.zeros(4, 3), torch.zeros(4), measures)
    assert info["status"].tolist() == [0, 0, 0, 2]  # (9, 0) is farthest from the stored rows
    thr = _archive(insertion=InsertionRule("threshold", threshold=1.0))
    thr.add(torch.zeros(1, 3), torch.zeros(1), measures[:1])
    info = thr.add(torch.zeros(4, 3), torch.zeros(4), measures)
    assert info["status"].tolist() == [0, 0, 2, 2]


def test_local_competition_replaces_worse_neighbour():
    lc = Archive(
        solution_dim=3,
        measure_dim=2,
        k_neighbors=1,
        insertion=InsertionRule("local_competition", threshold=1.0),
    )
    lc.add(torch.zeros(2, 3), torch.tensor([1.0, 5.0]), torch.tensor([[0.0, 0.0], [3.0, 3.0]]))
    info = lc.add(
        torch.ones(3, 3),
        torch.tensor([2.0, 1.5, 4.0]),
        torch.tensor([[0.1, 0.0], [0.0, 0.1], [3.0, 3.1]]),
    )
    # both first candidates target row 0; the better (2.0) wins; 4.0 < 5.0 keeps row 1
    assert info["status"].tolist() == [1, 0, 0]
    assert lc.objectives.tolist() == [2.0, 5.0] and len(lc) == 2
    assert "local_competition" in info


def test_reembed_keeps_rows_and_can_change_dimension():
    archive = _archive(extra_fields={"frames": ((2, 2), torch.uint8)})
    frames = torch.randint(0, 255, (5, 2, 2), dtype=torch.uint8)
    archive.add(torch.randn(5, 3), torch.arange(5.0), torch.randn(5, 2), frames=frames)
    archive.reembed(lambda d: d["frames"].float().flatten(1))
    assert len(archive) == 5 and archive.measure_dim == 4
    assert torch.equal(archive.descriptors, frames.float().flatten(1))
    with pytest.raises(ValueError, match="reembed"):
        archive.reembed(lambda d: torch.zeros(3, 2))


def test_kernel_log_det():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    k = torch.exp(torch.tensor(-0.5))
    assert rbf_kernel(x)[0, 1].item() == pytest.approx(k.item())
    assert rbf_log_det(x).item() == pytest.approx(float(torch.log(1 - k * k)), abs=1e-5)
    dup = torch.zeros(3, 2)
    assert torch.isfinite(rbf_log_det(dup))
    with pytest.raises(ValueError, match="NaN"):
        rbf_log_det(torch.tensor([[float("nan"), 0.0]]))


def test_data_sample_and_bad_input():
    archive = _archive()
    archive.add(
        torch.randn(6, 3),
        torch.arange(6.0),
        torch.randn(6, 2),
        reward_area=torch.tensor([0, -1, 1, -1, -1, 0]),
    )
    data = archive.data()
    assert set(data) >= {
        "solution",
        "objective",
        "measures",
        "ground_truth",
        "reward_area",
        "index",
    }
    df = archive.data(return_type="pandas")
    assert len(df) == 6 and "measures_1" in df.columns
    assert archive.sample(4)["solution"].shape == (4, 3)
    assert archive.sample_elites(2)["solution"].shape == (2, 3)
    with pytest.raises(ValueError, match="shape"):
        archive.add(torch.randn(2, 4), torch.zeros(2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="NaN"):
        archive.add(torch.randn(1, 3), torch.tensor([float("nan")]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="unknown field"):
        archive.add(torch.randn(1, 3), torch.zeros(1), torch.zeros(1, 2), bogus=torch.zeros(1))


def test_save_load_roundtrip_bit_exact(tmp_path):
    archive = _archive(
        extra_fields={"frames": ((1, 4, 4, 3), torch.uint8)}, env_spec={"name": "toy"}
    )
    archive.add(
        torch.randn(7, 3),
        torch.randn(7),
        torch.randn(7, 2),
        ground_truth=torch.rand(7, 2),
        reward_area=torch.tensor([0, 1, -1, -1, 0, 1, -1]),
        frames=torch.randint(0, 255, (7, 1, 4, 4, 3), dtype=torch.uint8),
    )
    path = archive.save(tmp_path / "a.safetensors")
    loaded = Archive.load(path)
    assert len(loaded) == 7 and loaded.env_spec == {"name": "toy"}
    for name in archive.field_list:
        assert torch.equal(loaded.field(name), archive.field(name)), name
    assert torch.equal(loaded.sample(3)["solution"], archive.sample(3)["solution"])


def test_corrupt_files_rejected(tmp_path):
    archive = _archive()
    archive.add(torch.randn(5, 3), torch.randn(5), torch.randn(5, 2))
    path = archive.save(tmp_path / "a.safetensors")
    raw = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ArchiveFileError, match="trunc.safetensors"):
        Archive.load(tmp_path / "trunc.safetensors")
    flipped = bytearray(raw)
    flipped[-3] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ArchiveFileError, match="checksum"):
        Archive.load(tmp_path / "flip.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ArchiveFileError, match="not a qdtorch archive"):
        Archive.load(tmp_path / "foreign.safetensors")
    (tmp_path / "pickle.pt").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ArchiveFileError, match="pickle.pt"):
        Archive.load(tmp_path / "pickle.pt")
    with pytest.raises(ArchiveFileError, match="no such"):
        Archive.load(tmp_path / "missing.safetensors")


def test_newer_version_rejected(tmp_path, monkeypatch):
    import qd.archive.files as mod

    archive = _archive()
    monkeypatch.setattr(mod, "FORMAT_VERSION", 99)
    path = archive.save(tmp_path / "new.safetensors")
    monkeypatch.setattr(mod, "FORMAT_VERSION", 1)
    with pytest.raises(ArchiveFileError, match="newer"):
        Archive.load(path)
