"""What `extract` keys on and what it does with bad inputs: --on-error, --max-bad-fraction, and the
settings that must (and must not) invalidate a cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.cache import load_features
from featurekit.cache.journal import journal_dir
from featurekit.cli.main import main

BACKBONE = ["--backbone", "test_resnet", "--weights", "random", "--no-progress", "--workers", "0"]
BACKBONE += ["--img-size", "32", "--device", "cpu"]


@pytest.fixture
def dataset(tmp_path: Path, rng: np.random.Generator) -> Path:
    root = tmp_path / "images"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8)).save(
                root / cls / f"{i}.png"
            )
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_on_error_fail_stops_at_the_bad_image_keeping_committed_rows(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (dataset / "b" / "5.png").write_bytes(b"<html>not an image</html>")  # fails to decode mid-run
    cache = tmp_path / "c.h5"
    args = [*BACKBONE, "--batch-size", "2", "--commit-every", "4", "--out", cache]
    code, _, err = _run(capsys, "extract", dataset, *args, "--on-error", "fail")
    assert code == 1
    assert "b/5.png" in err and "not an image" in err and "--on-error skip" in err
    assert not cache.exists() and list(journal_dir(cache).glob("unit-*.h5"))  # committed work kept

    code, out, _ = _run(capsys, "extract", dataset, *args)  # default: skip, and resume
    assert code == 0
    assert "19 rows" in out and "resumed from an interrupted run" in out and "skipped 1 input" in out


def test_on_error_fail_refuses_an_unreadable_file_before_any_model_work(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (dataset / "a" / "3.png").write_bytes(b"")
    code, _, err = _run(
        capsys, "extract", dataset, *BACKBONE, "--out", tmp_path / "c.h5", "--on-error", "fail"
    )
    assert code == 1
    assert "a/3.png: cannot be read (empty file (0 bytes))" in err and not (tmp_path / "c.h5.parts").exists()


def test_exit_status_is_non_zero_when_too_many_inputs_are_skipped(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(3):
        (dataset / "a" / f"{i}.png").write_bytes(b"<html>not an image</html>")
    cache = tmp_path / "c.h5"
    code, out, err = _run(capsys, "extract", dataset, *BACKBONE, "--out", cache)  # 3/20 > 10 %
    assert code == 1
    assert "15.0% of the inputs were skipped, more than --max-bad-fraction 0.1" in err
    assert "17 rows" in out and len(load_features(cache)) == 17  # the good rows are still cached

    code, _, _ = _run(capsys, "extract", dataset, *BACKBONE, "--out", cache, "--max-bad-fraction", "0.2")
    assert code == 0


def test_settings_that_change_features_invalidate_and_the_others_never_do(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "c.h5"
    assert _run(capsys, "extract", dataset, *BACKBONE, "--out", cache)[0] == 0
    # Batch size, commit unit and progress bar do not change features: every row is reused.
    code, out, _ = _run(
        capsys, "extract", dataset, *BACKBONE, "--out", cache, "--batch-size", "3", "--commit-every", "5"
    )
    assert code == 0 and "(0 extracted, 20 reused)" in out
    # Each feature-changing setting is refused, naming the field that differs.
    for extra, field in [
        (["--tta", "hflip"], "features.tta"),
        (["--layers", "-1,-2"], "features.layer"),
        (["--amp"], "precision: cache has 'float32', requested 'bfloat16'"),
        (["--mean", "0.4,0.4,0.4"], "preprocess.mean"),
        (["--weights", "random", "--crop-pct", "0.5"], "preprocess.crop_pct"),
    ]:
        code, _, err = _run(capsys, "extract", dataset, *BACKBONE, "--out", cache, *extra)
        assert code == 1, extra
        assert field in err and "--overwrite" in err, err


def test_rows_are_keyed_by_content_new_pixels_are_re_extracted_and_duplicates_extracted_once(
    tmp_path: Path, dataset: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "c.h5"
    (dataset / "b" / "copy_of_a0.png").write_bytes((dataset / "a" / "0.png").read_bytes())
    code, out, _ = _run(capsys, "extract", dataset, *BACKBONE, "--out", cache)
    assert code == 0 and "21 rows (20 extracted, 0 reused)" in out  # the identical copy embedded once
    before = load_features(cache)
    by_path = dict(zip(before.rows.paths, before.X, strict=True))
    np.testing.assert_array_equal(by_path["b/copy_of_a0.png"], by_path["a/0.png"])

    Image.fromarray(rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8)).save(dataset / "a" / "7.png")
    code, out, _ = _run(capsys, "extract", dataset, *BACKBONE, "--out", cache)
    assert code == 0 and "21 rows (1 extracted, 20 reused)" in out  # same name, new pixels
    after = load_features(cache)
    changed = dict(zip(after.rows.paths, after.X, strict=True))
    assert not np.array_equal(changed["a/7.png"], by_path["a/7.png"])
    np.testing.assert_array_equal(changed["a/6.png"], by_path["a/6.png"])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"cpu_decode_share": 1.5}, "between 0 and 1"),
        ({"batch_size": 0}, "batch size must be"),
        ({"decode": "fast"}, "decode 'fast'"),
        ({"compile_mode": "turbo"}, "turbo"),
    ],
)
def test_bad_settings_fail_before_the_index_and_the_model(
    tmp_path: Path, settings: dict[str, object], message: str
) -> None:
    """Checked first: a typo costs no indexing, hashing or model build (here the data path does not
    even exist, and the settings error is the one reported)."""
    from featurekit import api
    from featurekit.errors import InvalidInputError
    from featurekit.extract import ExtractionSettings

    with pytest.raises(InvalidInputError, match=message):
        api.extract(
            tmp_path / "missing",
            backbone="test_resnet",
            weights="random",
            settings=ExtractionSettings(**settings),  # type: ignore[arg-type]
        )
