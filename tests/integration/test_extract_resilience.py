"""A cache that never loses work and never lies: kill -9, Ctrl-C/SIGTERM, concurrent extractors,
readers during an extraction, provenance of unfinished work, verify and repair.

Killed runs are real `python -m featurekit extract` processes; resumes run in this process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from featurekit import api
from featurekit.cache import cache_info, load_features
from featurekit.cache.journal import journal_dir
from featurekit.cache.lock import lock_path
from featurekit.cli.main import main
from featurekit.config import PreprocessOverrides
from featurekit.errors import CacheDamagedError, CacheLockedError, ProvenanceMismatchError
from featurekit.extract import ExtractionSettings

pytestmark = pytest.mark.slow

N_IMAGES = 240
COMMIT_EVERY = 10
CLI_ARGS = ["--backbone", "test_resnet", "--weights", "random", "--no-progress", "--workers", "0"]
CLI_ARGS += ["--img-size", "64", "--batch-size", "1", "--commit-every", str(COMMIT_EVERY), "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resilience") / "images"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(N_IMAGES // 2):
            pixels = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i:03d}.png")
    return root


def _extract(data: Path, cache: Path, *, img_size: int = 64, overwrite: bool = False) -> api.ExtractReport:
    return api.extract(
        data,
        backbone="test_resnet",
        weights="random",
        out=cache,
        preprocess=PreprocessOverrides(img_size=img_size),
        settings=ExtractionSettings(
            batch_size=1, num_workers=0, progress=False, device="cpu", commit_every=COMMIT_EVERY
        ),
        overwrite=overwrite,
    )


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Features of an uninterrupted run, by image path."""
    cache = tmp_path_factory.mktemp("reference") / "ref.h5"
    _extract(data, cache)
    ref = load_features(cache)
    return dict(zip(ref.rows.paths, ref.X, strict=True))


def _spawn(data: Path, cache: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "featurekit",
        "extract",
        str(data),
        *CLI_ARGS,
        "--out",
        str(cache),
        *extra,
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )


def _wait_for_units(
    cache: Path, process: subprocess.Popen[str], count: int = 1, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(journal_dir(cache).glob("unit-*.h5"))) >= count:
            return
        if process.poll() is not None:
            return
        time.sleep(0.005)
    raise AssertionError("the extractor never committed a unit")


def _leftovers(cache: Path) -> list[Path]:
    """Anything an extraction may leave behind besides the cache and its bad-inputs CSV."""
    folder = cache.parent
    found = [p for p in folder.iterdir() if ".tmp-" in p.name]
    found += [p for p in (journal_dir(cache), lock_path(cache)) if p.exists()]
    return found


def _assert_complete(cache: Path, reference: dict[str, np.ndarray]) -> None:
    done = load_features(cache)
    assert len(done) == N_IMAGES
    keys = done.rows.row_keys()
    assert len(set(keys)) == len(keys)  # no duplicates
    for path, vector in zip(done.rows.paths, done.X, strict=True):
        np.testing.assert_array_equal(vector, reference[path])  # batch size 1: bit-identical
    assert not _leftovers(cache)


@pytest.mark.parametrize("seed", range(10))
def test_kill_9_at_random_points_then_rerun_gives_exactly_the_uninterrupted_cache(
    seed: int, data: Path, reference: dict[str, np.ndarray], tmp_path: Path
) -> None:
    rng = random.Random(seed)
    cache = tmp_path / "cache.h5"
    commits = 1 + N_IMAGES // COMMIT_EVERY + 1  # journal meta, each unit, the cache itself
    for _ in range(1 + seed % 2):  # odd seeds are killed twice before the clean rerun
        if seed % 3 == 0:  # at a random moment of the extraction
            process = _spawn(data, cache)
            _wait_for_units(cache, process)
            time.sleep(rng.uniform(0.0, 0.5))
            process.kill()
        else:  # at a named step, including in the middle of committing a unit or the cache
            point = rng.choice(["before-rename", "unit-committed", "cache-committed"])
            count = {"before-rename": rng.randint(1, commits), "cache-committed": 1}.get(
                point, rng.randint(1, commits - 2)
            )
            process = _spawn(data, cache, env={"FEATUREKIT_CRASH_AT": f"{point}:{count}"})
        process.communicate(timeout=300)
        assert process.returncode in (-signal.SIGKILL, 0), process.returncode
        if cache.exists():  # a crash never leaves an unreadable cache
            assert len(load_features(cache)) == N_IMAGES
    report = _extract(data, cache)
    assert report.rows == N_IMAGES
    assert report.extracted + report.resumed + report.reused == N_IMAGES
    _assert_complete(cache, reference)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_the_batch_keeps_committed_work_and_the_rerun_does_only_the_rest(
    signum: int, data: Path, reference: dict[str, np.ndarray], tmp_path: Path
) -> None:
    cache = tmp_path / "cache.h5"
    process = _spawn(data, cache)
    _wait_for_units(cache, process, count=2)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    assert "run the same command again to resume" in err
    committed = sum(len(h5py.File(p, "r")["key"]) for p in journal_dir(cache).glob("unit-*.h5"))
    assert 2 * COMMIT_EVERY <= committed < N_IMAGES
    assert not cache.exists()

    report = _extract(data, cache)
    assert report.resumed == committed
    assert report.extracted == N_IMAGES - committed  # only the remaining work
    _assert_complete(cache, reference)
    # Each row records the run that made it: the interrupted process or the one that resumed.
    runs = cache_info(cache)["runs"]
    assert [run["rows"] for run in runs] == [committed, N_IMAGES - committed]
    assert runs[0]["id"] != runs[1]["id"]
    for run in runs:
        assert run["resolved"]["device"] == "cpu" and run["resolved"]["decode"] == "cpu"
        assert run["batch_sizes"] == [1] and run["decoders"] == {"cpu": run["rows"]}


def test_a_second_extractor_fails_fast_and_a_dead_holders_lock_is_reclaimed(
    data: Path, reference: dict[str, np.ndarray], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache.h5"
    process = _spawn(data, cache)
    _wait_for_units(cache, process)
    with pytest.raises(CacheLockedError, match=rf"being written by process {process.pid} on host \S+"):
        _extract(data, cache)
    process.kill()
    process.communicate(timeout=60)
    assert lock_path(cache).exists()  # left behind by the killed holder

    report = _extract(data, cache)
    assert f"process {process.pid}" in caplog.text and "reclaimed the lock" in caplog.text
    assert report.resumed > 0
    _assert_complete(cache, reference)


def test_readers_during_an_extraction_see_only_committed_rows(
    data: Path, reference: dict[str, np.ndarray], tmp_path: Path
) -> None:
    subset = tmp_path / "subset"
    subset.mkdir()
    for path in sorted(data.rglob("*.png"))[:50]:
        (subset / path.parent.name).mkdir(exist_ok=True)
        (subset / path.parent.name / path.name).write_bytes(path.read_bytes())
    cache = tmp_path / "cache.h5"
    assert _extract(subset, cache).rows == 50

    process = _spawn(data, cache)
    seen = set()
    while process.poll() is None:
        seen.add(len(load_features(cache)))  # the old cache, or the finished new one: nothing between
    process.communicate()
    assert process.returncode == 0
    assert seen <= {50, N_IMAGES} and 50 in seen
    _assert_complete(cache, reference)


def test_unfinished_work_with_other_settings_is_refused_naming_the_setting(
    data: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache.h5"
    process = _spawn(data, cache, env={"FEATUREKIT_CRASH_AT": "unit-committed:2"})
    process.communicate(timeout=300)
    with pytest.raises(ProvenanceMismatchError, match=r"unfinished work.*preprocess\.img_size.*--overwrite"):
        _extract(data, cache, img_size=48)
    report = _extract(data, cache, img_size=48, overwrite=True)
    assert report.resumed == 0 and report.rows == N_IMAGES


def _flip_a_feature_byte(cache: Path, row: int) -> None:
    with h5py.File(cache, "r") as f:
        dataset = f["features"]
        chunk_rows = dataset.chunks[0]
        info = dataset.id.get_chunk_info_by_coord((row // chunk_rows * chunk_rows, 0))
        offset = info.byte_offset + (row % chunk_rows) * dataset.shape[1] * 4 + 2
    with cache.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x10]))


def test_verify_names_a_bit_flipped_unit_and_repair_reextracts_only_it(
    data: Path,
    reference: dict[str, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("featurekit.cache.checksum.ROWS_PER_UNIT", 64)
    cache = tmp_path / "cache.h5"
    _extract(data, cache)
    assert main(["cache", "verify", str(cache)]) == 0
    assert "ok: 240 rows in 4 units checked" in capsys.readouterr().out
    _flip_a_feature_byte(cache, row=150)  # unit 2: rows 128-191

    with pytest.raises(CacheDamagedError, match="cache repair"):
        load_features(cache)  # every reader fails loudly, not only verify
    code = main(["cache", "verify", str(cache), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and not report["ok"]
    assert [(u["unit"], u["start"], u["stop"]) for u in report["damaged_units"]] == [(2, 128, 192)]

    assert main(["cache", "repair", str(cache), "--no-progress", "--workers", "0"]) == 0
    assert "repaired 1 unit(s) (64 rows re-extracted)" in capsys.readouterr().out
    assert main(["cache", "verify", str(cache)]) == 0
    with h5py.File(cache, "r") as f:  # the repaired rows record the repair as their run
        runs, row_run = json.loads(f.attrs["runs"]), f["rows/run"][()]
    assert len(runs) == 2 and "repair_of" in runs[1]["requested"]
    assert runs[1]["requested"]["fold_batchnorm"] == runs[0]["requested"]["fold_batchnorm"]
    assert np.flatnonzero(row_run == 1).tolist() == list(range(128, 192))
    done = load_features(cache)
    for row, (path, vector) in enumerate(zip(done.rows.paths, done.X, strict=True)):
        if 128 <= row < 192:  # re-extracted at the default batch size: float rounding differs
            np.testing.assert_allclose(vector, reference[path], rtol=1e-5, atol=1e-6)
        else:  # untouched
            np.testing.assert_array_equal(vector, reference[path])


def test_a_truncated_journal_unit_is_named_by_verify_and_its_rows_are_redone(
    data: Path, reference: dict[str, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache.h5"
    process = _spawn(data, cache, env={"FEATUREKIT_CRASH_AT": "unit-committed:4"})
    process.communicate(timeout=300)
    unit = sorted(journal_dir(cache).glob("unit-*.h5"))[1]
    unit.write_bytes(unit.read_bytes()[:700])  # truncated, e.g. by a full disk or a bad copy

    assert main(["cache", "verify", str(cache)]) == 1
    out = capsys.readouterr().out
    assert f"journal {unit.name}: unreadable" in out

    report = _extract(data, cache)
    assert report.resumed == 3 * COMMIT_EVERY  # the three intact units; the truncated one is redone
    _assert_complete(cache, reference)


def test_cache_info_json_reports_rows_dimension_and_provenance(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache.h5"
    _extract(data, cache)
    assert main(["cache", "info", str(cache), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == N_IMAGES
    assert info["feature_dim"] == 96
    assert info["provenance"]["backbone"] == "test_resnet"
    assert info["provenance"]["preprocess"]["img_size"] == 64
    assert info["unfinished_units"] == 0
