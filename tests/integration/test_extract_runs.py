"""A cache grown over several `extract` runs records which run made each row (cache/runs.py), also
when it started as a cache written before runs were recorded."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from featurekit import api
from featurekit.cache import cache_info
from featurekit.cache.runs import is_unrecorded
from featurekit.cli.main import main
from featurekit.config import PreprocessOverrides
from featurekit.extract import ExtractionSettings


def _extract(data: Path, cache: Path, batch_size: int) -> api.ExtractReport:
    return api.extract(
        data,
        backbone="test_resnet",
        weights="random",
        out=cache,
        preprocess=PreprocessOverrides(img_size=32),
        settings=ExtractionSettings(batch_size=batch_size, num_workers=0, progress=False, device="cpu"),
    )


def _add_images(folder: Path, names: range, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in names:
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")


def _runs_by_path(cache: Path) -> dict[str, str]:
    with h5py.File(cache, "r") as f:
        paths = [p.decode() for p in f["rows/path"][()]]
        row_run = f["rows/run"][()]
    ids = [run["id"] for run in cache_info(cache)["runs"]]
    return {path: ids[run] for path, run in zip(paths, row_run, strict=True)}


def test_rows_keep_the_run_that_made_them_as_the_cache_grows_and_shrinks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    data, cache = tmp_path / "images", tmp_path / "cache.h5"
    _add_images(data / "a", range(0, 12, 2), rng)
    _extract(data, cache, batch_size=4)
    (first,) = cache_info(cache)["runs"]
    assert first["rows"] == 6 and first["batch_sizes"] == [4] and first["decoders"] == {"cpu": 6}
    assert first["requested"]["batch_size"] == 4 and first["resolved"]["workers"] == 0
    assert first["precision"] == "float32" and first["versions"]["torch"]

    # As a featurekit that did not record runs left it.
    with h5py.File(cache, "r+") as f:
        del f["rows/run"], f["rows/decoder"], f.attrs["runs"]
        created_at = f.attrs["provenance"]  # JSON holding created_at
    _add_images(data / "a", range(1, 7, 2), rng)  # listed between the old ones
    report = _extract(data, cache, batch_size=2)
    assert (report.reused, report.extracted) == (6, 3)
    old, new = cache_info(cache)["runs"]
    assert is_unrecorded(old) and old["started_at"] in created_at
    assert (old["rows"], old["decoders"]) == (6, {"unrecorded": 6})
    assert (new["rows"], new["batch_sizes"], new["decoders"]) == (3, [2], {"cpu": 3})
    made_by = _runs_by_path(cache)
    assert {made_by[f"a/{i:02d}.png"] for i in range(0, 12, 2)} == {old["id"]}
    assert {made_by[f"a/{i:02d}.png"] for i in range(1, 7, 2)} == {new["id"]}

    assert main(["cache", "info", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "made by 2 run(s):" in out
    assert "6 rows made before featurekit recorded runs" in out
    assert "3 rows on cpu" in out and "batch 2, decoded: 3 cpu" in out

    # The first six images go: their run is no longer listed; a run that made no row is not either.
    for i in range(0, 12, 2):
        (data / "a" / f"{i:02d}.png").unlink()
    report = _extract(data, cache, batch_size=2)
    assert (report.reused, report.extracted) == (3, 0)
    (only,) = cache_info(cache)["runs"]
    assert only["id"] == new["id"] and only["rows"] == 3


def test_the_cache_records_which_rows_the_device_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GPU path forced on the CPU (as in test_extract_gpu_decode.py): JPEGs go to the device
    decoder, the PNG through PIL, and each row's decoder lands in the cache."""
    import featurekit.extract.engine as engine_module

    rng = np.random.default_rng(1)
    data, cache = tmp_path / "images", tmp_path / "cache.h5"
    (data / "a").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(data / "a" / f"{i}.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(data / "a" / "4.png")
    monkeypatch.setattr(engine_module, "resolve_decode", lambda decode, device, pre, quiet=False: "gpu")
    _extract(data, cache, batch_size=2)
    (run,) = cache_info(cache)["runs"]
    assert run["resolved"]["decode"] == "gpu"
    assert run["decoders"] == {"cpu": 1, "gpu": 4}
    with h5py.File(cache, "r") as f:
        paths = [p.decode() for p in f["rows/path"][()]]
        decoded = dict(zip(paths, f["rows/decoder"][()].tolist(), strict=True))
    assert decoded == {"a/0.jpg": 2, "a/1.jpg": 2, "a/2.jpg": 2, "a/3.jpg": 2, "a/4.png": 1}
