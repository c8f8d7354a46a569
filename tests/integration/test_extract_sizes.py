"""extract --img-size 32,48: every image embedded at each size, blocks side by side, keyed, used by
fit --features / evaluate / predict, each block equal to a single-size extraction at that size."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit import api
from featurekit.cache import load_features, read_provenance
from featurekit.cli.main import main
from featurekit.config import PreprocessOverrides
from featurekit.extract import ExtractionSettings
from featurekit.persist import load_model

BACKBONE = ["--backbone", "test_resnet", "--weights", "random", "--no-progress", "--workers", "0"]
TIGHT = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture
def dataset(tmp_path: Path, rng: np.random.Generator) -> Path:
    root = tmp_path / "colours"
    for name, colour in {"red": (200, 30, 30), "blue": (30, 40, 200)}.items():
        (root / name).mkdir(parents=True)
        for i in range(10):
            # Several shapes, none square: the resize and centre crop differ from one size to the other.
            height, width = 40 + 3 * i, 56 - 2 * i
            noise = rng.integers(-60, 60, size=(height, width, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _block(features: np.ndarray, provenance: dict, name: str) -> np.ndarray:
    (block,) = [b for b in provenance["features"]["layout"] if b["name"] == name]
    return features[:, block["start"] : block["stop"]]


def test_each_size_block_equals_a_single_size_extraction(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    multi = tmp_path / "multi.h5"
    code, out, err = _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "48,32", "--out", multi)
    assert code == 0, err
    assert "feature blocks side by side (fit --features NAME,…): 48px, 32px" in out
    cache = load_features(multi)
    assert cache.provenance["preprocess"]["img_size"] == [48, 32]
    layout = cache.provenance["features"]["layout"]
    dim = layout[0]["stop"]
    assert layout == [
        {"name": "48px", "img_size": 48, "start": 0, "stop": dim},
        {"name": "32px", "img_size": 32, "start": dim, "stop": 2 * dim},
    ]
    assert cache.X.shape == (20, 2 * dim) == (20, cache.provenance["features"]["dim"])

    for size in (48, 32):
        single = tmp_path / f"single{size}.h5"
        assert _run(capsys, "extract", dataset, *BACKBONE, "--img-size", size, "--out", single)[0] == 0
        reference = load_features(single)
        assert reference.rows.paths == cache.rows.paths
        block = _block(cache.X, cache.provenance, f"{size}px")
        np.testing.assert_allclose(block, reference.X, **TIGHT)
        assert np.abs(block).max() > 0.01  # features of real magnitude, not zeros
    # The two sizes do give different features (the blocks are not one size copied).
    assert not np.allclose(
        _block(cache.X, cache.provenance, "48px"), _block(cache.X, cache.provenance, "32px")
    )

    # A single size is today's path: an int img_size, no layout, the same key as a plain override.
    plain_provenance, plain_key = read_provenance(tmp_path / "single48.h5")
    assert plain_provenance["preprocess"]["img_size"] == 48 and "layout" not in plain_provenance["features"]
    settings = ExtractionSettings(progress=False, num_workers=0)
    via_sizes = api.extract(
        dataset, backbone="test_resnet", weights="random", img_sizes=(48,), settings=settings,
        out=tmp_path / "via_sizes.h5",
    )  # fmt: skip
    via_override = api.extract(
        dataset, backbone="test_resnet", weights="random", settings=settings, out=tmp_path / "via_pre.h5",
        preprocess=PreprocessOverrides(img_size=48),
    )  # fmt: skip
    assert via_sizes.provenance_key == via_override.provenance_key == plain_key

    # Other sizes are another provenance, named by the field that differs.
    code, _, err = _run(
        capsys, "extract", dataset, *BACKBONE, "--img-size", "48,32", "--out", tmp_path / "single48.h5"
    )
    assert code == 1 and "preprocess.img_size: cache has 48, requested [48, 32]" in err
    code, _, err = _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "48,40", "--out", multi)
    assert code == 1 and "preprocess.img_size: cache has [48, 32], requested [48, 40]" in err
    # The same command again reuses every row.
    code, out, _ = _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "48,32", "--out", multi)
    assert code == 0 and "(0 extracted, 20 reused)" in out


def test_sizes_with_layers_and_hflip(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ["--layers", "-1,-2", "--pool", "avg,max", "--tta", "hflip"]
    multi, single = tmp_path / "multi.h5", tmp_path / "single.h5"
    code, out, err = _run(
        capsys, "extract", dataset, *BACKBONE, *options, "--img-size", "32,48", "--out", multi
    )
    assert code == 0, err
    names = ["layer-1.avg", "layer-1.max", "layer-2.avg", "layer-2.max"]
    expected = [f"{size}px.{name}" for size in (32, 48) for name in names]
    assert ", ".join(expected) in out
    cache = load_features(multi)
    layout = cache.provenance["features"]["layout"]
    assert [b["name"] for b in layout] == expected
    assert {(b["img_size"], b["layer"], b["pool"]) for b in layout} == {
        (s, layer, pool) for s in (32, 48) for layer in (-1, -2) for pool in ("avg", "max")
    }
    assert cache.provenance["features"]["tta"] == "hflip"
    assert _run(capsys, "extract", dataset, *BACKBONE, *options, "--img-size", "48", "--out", single)[0] == 0
    reference = load_features(single)
    for name in names:
        np.testing.assert_allclose(
            _block(cache.X, cache.provenance, f"48px.{name}"),
            _block(reference.X, reference.provenance, name),
            **TIGHT,
        )


def test_fit_evaluate_predict_on_a_size_block(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    multi, single = tmp_path / "multi.h5", tmp_path / "single.h5"
    assert _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "32,48", "--out", multi)[0] == 0
    assert _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "48", "--out", single)[0] == 0

    # fit --features 48px on the two-size cache = fit on the 48 px cache (same seeded split).
    on_block = api.fit(
        multi, head="logreg", blocks=["48px"], out=tmp_path / "block.skops", reports_dir=tmp_path
    )
    on_single = api.fit(single, head="logreg", out=tmp_path / "single.skops", reports_dir=tmp_path)
    assert on_block.metrics["accuracy"] == on_single.metrics["accuracy"]
    assert on_block.n_test == on_single.n_test == 4
    block_model, single_model = load_model(on_block.model_path), load_model(on_single.model_path)
    assert block_model.metadata["feature_blocks"] == ["48px"]
    X48 = load_features(single).X
    np.testing.assert_allclose(
        block_model.estimator.predict_proba(X48),
        single_model.estimator.predict_proba(X48),
        rtol=1e-4,
        atol=1e-6,
    )
    # evaluate selects the same columns.
    code, out, _ = _run(capsys, "evaluate", on_block.model_path, multi, "--json", "--rows", "all")
    assert code == 0 and json.loads(out)["accuracy"] >= 0.75
    code, _, err = _run(capsys, "fit", multi, "--features", "48pz", "--reports-dir", tmp_path)
    assert code == 1 and "did you mean: 48px" in err

    # predict rebuilds both sizes: its probabilities are the head's on the cache's own rows.
    both = api.fit(multi, head="logreg", out=tmp_path / "both.skops", reports_dir=tmp_path)
    new = tmp_path / "new"
    new.mkdir()
    picked = ["red/03.png", "blue/07.png"]
    for i, rel in enumerate(picked):
        (new / f"{i}.png").write_bytes((dataset / rel).read_bytes())
    cache = load_features(multi)
    for model, columns in ((both.model_path, slice(None)), (on_block.model_path, "48px")):
        predictions = tmp_path / "p.csv"
        code, _, err = _run(
            capsys, "predict", model, new, "--out", predictions, "--workers", "0", "--no-progress"
        )
        assert code == 0, err
        loaded = load_model(model)
        rows = [cache.rows.paths.index(rel) for rel in picked]
        X = cache.X[rows] if columns == slice(None) else _block(cache.X[rows], cache.provenance, "48px")
        expected = loaded.estimator.predict_proba(X)
        with predictions.open() as handle:
            got = [
                [float(row[f"p_{c}"]) for c in loaded.metadata["class_names"]]
                for row in csv.DictReader(handle)
            ]
        np.testing.assert_allclose(np.array(got), expected, atol=2e-6)


def test_predict_features_match_the_cache(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The backbone predict rebuilds from a multi-size provenance reproduces the cache's rows."""
    from featurekit.extract import extract_features
    from featurekit.extract.rebuild import rebuild_backbone
    from featurekit.images import SourceOptions, load_image_index

    multi = tmp_path / "multi.h5"
    assert _run(capsys, "extract", dataset, *BACKBONE, "--img-size", "40,32", "--out", multi)[0] == 0
    cache = load_features(multi)
    backbone = rebuild_backbone(cache.provenance, expected_key=cache.provenance_key, what="the cache")
    assert backbone.img_sizes == (40, 32) and backbone.feature_dim == cache.feature_dim
    index = load_image_index(dataset / "blue", SourceOptions(source="unlabelled"))
    result = extract_features(backbone, index, settings=ExtractionSettings(progress=False, num_workers=0))
    rows = [cache.rows.paths.index(f"blue/{p}") for p in index.paths]
    np.testing.assert_allclose(result.features, cache.X[rows], **TIGHT)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "img_size 0 is invalid"),
        ("-5", "img_size -5 is invalid"),
        ("32,-5", "img_size -5 is invalid"),
        ("32,0", "img_size 0 is invalid"),
        ("32,32", "each size at most once"),
        ("32,48,32", "each size at most once"),
        ("22.5", "whole numbers of pixels"),
        ("32,x", "whole numbers of pixels"),
        ("32,", "whole numbers of pixels"),
    ],
)
def test_bad_sizes_are_one_line_errors(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    code, _, err = _run(
        capsys, "extract", dataset, *BACKBONE, f"--img-size={value}", "--out", tmp_path / "c.h5"
    )
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c.h5").exists()


def test_several_sizes_refuse_gpu_decode(
    tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys,
        "extract",
        dataset,
        *BACKBONE,
        "--img-size",
        "32,48",
        "--decode",
        "gpu",
        "--out",
        tmp_path / "c.h5",
    )
    assert code == 1 and "several input sizes" in err and len(err.strip().splitlines()) == 1
