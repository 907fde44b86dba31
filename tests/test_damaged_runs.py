"""Fuzzing a run folder: each file damaged in several ways, every read command and a resume run
on the copy. Each must succeed (the command does not need that file, or a resume falls back to an
older checkpoint) or exit 2 with one line naming the file; never a traceback, never a pickle
executed, and the read commands change nothing in the folder."""

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from qd.archive.files import checksum
from qd.cli import main
from qd.integrity import file_sha256
from qd.run import RunConfig, start

pytestmark = pytest.mark.usefixtures("one_thread")
LATEST = "checkpoints/000000000300"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    torch_threads = __import__("torch").get_num_threads()
    __import__("torch").set_num_threads(1)
    out = tmp_path_factory.mktemp("damaged") / "run"
    config = RunConfig(
        algorithm="ns",
        env="hardmaze",
        out=str(out),
        budget=300,
        checkpoint_every=100,
        env_options={"episode_length": 20},
        algorithm_config={"pop_size": 50},
    )
    start(config, progress=False)
    __import__("torch").set_num_threads(torch_threads)
    return out


# -- damages -------------------------------------------------------------------------------------
class _Touch:
    """Unpickling this creates the file ``marker`` (it must never happen)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garble(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    start = min(int(len(data) * where), max(0, len(data) - 64))
    for i in range(start, min(start + 64, len(data))):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))


def _pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps(_Touch(path.parent / "PICKLE-EXECUTED")))


def _rewrite_archive(path: Path, change) -> None:
    """Rewrite an archive file with ``change(header, tensors)`` applied and a valid checksum."""
    with safe_open(str(path), framework="pt") as handle:
        header = json.loads(handle.metadata()["qdtorch"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    change(header, tensors)
    header["sha256"] = checksum(tensors)
    path.unlink()
    save_file(tensors, str(path), metadata={"qdtorch": json.dumps(header)})


def _shape(header, tensors):
    header["schema"]["solution"]["shape"] = [header["schema"]["solution"]["shape"][0] + 1]


def _dtype(header, tensors):
    header["schema"]["objective"]["dtype"] = "complex64"


def _huge(header, tensors):
    header["size"] = 10**12


def _generator(header, tensors):
    tensors["__generator__"] = tensors["__generator__"][:100].clone()


def _no_field(header, tensors):
    del tensors["reward_area"]


def _float64(header, tensors):
    tensors["objective"] = tensors["objective"].double()
    header["schema"]["objective"]["dtype"] = "float64"


def _json(change):
    def damage(path: Path) -> None:
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return damage


def _metrics(change):
    def damage(path: Path) -> None:
        lines = [json.loads(r) for r in path.read_text().splitlines()]
        lines[1] = change(lines[1])
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))

    return damage


BYTES = {"truncate": _truncate, "empty": _empty, "garble": _garble}
ARCHIVE = {
    **BYTES,
    "garble_end": lambda p: _garble(p, 1.0),
    "pickle": _pickle,
    "shape": lambda p: _rewrite_archive(p, _shape),
    "dtype": lambda p: _rewrite_archive(p, _dtype),
    "float64": lambda p: _rewrite_archive(p, _float64),
    "huge_size": lambda p: _rewrite_archive(p, _huge),
    "generator": lambda p: _rewrite_archive(p, _generator),
    "no_field": lambda p: _rewrite_archive(p, _no_field),
}
CONFIG = {
    **BYTES,
    "array": _json(lambda d: [d]),
    "env_int": _json(lambda d: {**d, "env": 3}),
    "budget_str": _json(lambda d: {**d, "budget": "300"}),
    "options_list": _json(lambda d: {**d, "algorithm_config": [1]}),
    "unknown_key": _json(lambda d: {**d, "colour": "red"}),
    "sigma_nan": _json(lambda d: {**d, "algorithm_config": {"sigma": float("nan")}}),
}
METRICS = {
    **BYTES,
    "line_array": _metrics(lambda m: [m]),
    "evaluations_str": _metrics(lambda m: {**m, "evaluations": "x"}),
    "coverage_str": _metrics(lambda m: {**m, "coverage": "high"}),
    "max_reward_dict": _metrics(lambda m: {**m, "max_reward": {"a": 1}}),
}
MANIFEST = {
    **BYTES,
    "array": _json(lambda d: [d]),
    "files_list": _json(lambda d: {**d, "files": list(d["files"])}),
}
CASES = [
    *(("config.json", k, f) for k, f in CONFIG.items()),
    *(("metrics.jsonl", k, f) for k, f in METRICS.items()),
    *(("archive/novelty.safetensors", k, f) for k, f in ARCHIVE.items()),
    *(("archive/champions.safetensors", k, f) for k, f in ARCHIVE.items() if k in BYTES),
    *(("finished.json", k, f) for k, f in MANIFEST.items()),
    *((f"{LATEST}/state.safetensors", k, f) for k, f in ARCHIVE.items() if k in BYTES),
    *((f"{LATEST}/state.safetensors", k, f) for k, f in ARCHIVE.items() if k == "pickle"),
    *((f"{LATEST}/archive-novelty.safetensors", k, f) for k, f in ARCHIVE.items()),
    *((f"{LATEST}/manifest.json", k, f) for k, f in MANIFEST.items()),
]
IDS = [f"{name}-{kind}" for name, kind, _ in CASES]
# files every read command needs: damaging them must give exit 2 (naming them) for inspect
NEEDED_BY_INSPECT = ("config.json", "metrics.jsonl", "archive/novelty.safetensors")
# settings only a run uses; a cut last metrics line (a kill's trace) or none (not started); the
# generator state, which only a running archive uses
HARMLESS_TO_INSPECT = {
    ("config.json", "unknown_key"),
    ("config.json", "sigma_nan"),
    ("metrics.jsonl", "truncate"),
    ("metrics.jsonl", "empty"),
    ("archive/novelty.safetensors", "generator"),
}


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _damaged_copy(run_folder: Path, tmp_path: Path, name: str, damage) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    damage(folder / name)
    return folder


def _check(capsys, argv: list[str], name: str) -> tuple[int, str]:
    """Run ``qd argv``: exit 0, or 2 with one error line naming the file ``name``."""
    rc = main(argv)  # an exception escaping here is a traceback for the user
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err + captured.out
    assert rc in (0, 2), (argv, rc, err)
    errors = [line for line in err.splitlines() if not line.startswith("qd: warning:")]
    if rc == 2:
        assert len(errors) == 1 and errors[0].startswith("qd: error: "), err
        assert Path(name).name in errors[0], (argv, err)
    else:
        assert not errors, err
    return rc, err


@pytest.mark.parametrize(("name", "kind", "damage"), CASES, ids=IDS)
def test_read_commands_on_a_damaged_file(run_folder, tmp_path, capsys, name, kind, damage):
    folder = _damaged_copy(run_folder, tmp_path, name, damage)
    before = _snapshot(folder)
    out = tmp_path / "out"
    out.mkdir()
    commands = [
        ["inspect", str(folder)],
        ["inspect", str(folder), "--top", "3"],
        ["export", str(folder), "--format", "csv", "--out", str(out / "rows.csv")],
        ["plot", str(folder), "--kind", "coverage", "--out", str(out / "coverage.png")],
    ]
    codes = [_check(capsys, argv, name)[0] for argv in commands]
    if name in NEEDED_BY_INSPECT and (name, kind) not in HARMLESS_TO_INSPECT:
        assert codes[0] == 2, (name, kind)
    assert _snapshot(folder) == before  # read commands write nothing into the run folder
    assert not (folder / name).with_name("PICKLE-EXECUTED").exists()


FAST_RESUME = {
    "config.json-env_int",
    "config.json-array",
    "metrics.jsonl-line_array",
    f"{LATEST}/state.safetensors-garble",
    f"{LATEST}/archive-novelty.safetensors-pickle",
    f"{LATEST}/manifest.json-truncate",
}


@pytest.mark.parametrize(
    ("name", "kind", "damage"),
    [
        pytest.param(*case, marks=() if case_id in FAST_RESUME else pytest.mark.slow, id=case_id)
        for case, case_id in zip(CASES, IDS, strict=True)
    ],
)
def test_resume_on_a_damaged_file(run_folder, tmp_path, capsys, name, kind, damage):
    folder = _damaged_copy(run_folder, tmp_path, name, damage)
    before = _snapshot(folder)
    rc, err = _check(capsys, ["run", "--resume", str(folder), "--no-progress"], name)
    assert not (folder / name).with_name("PICKLE-EXECUTED").exists()
    if rc == 2:  # refused: nothing changed
        assert _snapshot(folder) == before
        return
    if name.startswith("checkpoints/"):  # the damaged checkpoint is set aside, with a warning
        assert "qd: warning:" in err and Path(name).name in err
        assert (folder / "checkpoints" / f"damaged-{Path(name).parent.name}").is_dir()
    # the resumed run is whole again: finished, same archives as the undamaged run
    assert main(["inspect", str(folder)]) == 0
    assert "(not finished)" not in capsys.readouterr().out
    for archive in ("novelty", "champions", "population"):
        got = hashlib.sha256((folder / "archive" / f"{archive}.safetensors").read_bytes())
        want = hashlib.sha256((run_folder / "archive" / f"{archive}.safetensors").read_bytes())
        assert got.hexdigest() == want.hexdigest(), archive
