"""check_compatible: dimension, provenance key, first differing provenance field."""

from __future__ import annotations

import pytest

from featurekit.errors import ProvenanceMismatchError
from featurekit.persist import check_compatible, first_difference

PROV = {
    "backbone": {"name": "efficientnet_lite0", "pool": "avg"},
    "preprocess": {"img_size": 224, "mean": [0.485, 0.456, 0.406], "resize_mode": "crop"},
}
META = {"feature_dim": 1280, "provenance_key": "k1", "provenance": PROV}


def test_matching_features_pass() -> None:
    check_compatible(META, provenance_key="k1", feature_dim=1280)
    check_compatible(META, provenance_key="k1", feature_dim=1280, provenance=PROV)


def test_dimension_mismatch_is_named() -> None:
    with pytest.raises(ProvenanceMismatchError, match="feature dimension differs: model 1280, cache 1024"):
        check_compatible(META, provenance_key="k1", feature_dim=1024)


def test_first_differing_dotted_field_is_named() -> None:
    cache_prov = {**PROV, "preprocess": {**PROV["preprocess"], "img_size": 256}}
    with pytest.raises(
        ProvenanceMismatchError,
        match=r"preprocess\.img_size: model 224, cache 256 \(provenance key: model k1, cache k2\)",
    ):
        check_compatible(META, provenance_key="k2", feature_dim=1280, provenance=cache_prov)


def test_key_mismatch_without_provenance_names_the_keys() -> None:
    with pytest.raises(
        ProvenanceMismatchError, match=r"features differ .*\(provenance key: model k1, cache k9\)"
    ):
        check_compatible(META, provenance_key="k9", feature_dim=1280)


def test_missing_feature_dim_is_an_error() -> None:
    with pytest.raises(ProvenanceMismatchError, match="records no 'feature_dim'"):
        check_compatible({}, provenance_key="k1", feature_dim=3)


def test_first_difference_details() -> None:
    assert first_difference({"mean": (0.5, 0.5)}, {"mean": [0.5, 0.5]}) is None  # JSON lists == tuples
    assert first_difference({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}) == "a.c: model <missing>, cache 2"
    assert first_difference({"a": 1, "z": 1}, {"a": 2, "z": 2}) == "a: model 1, cache 2"
    assert first_difference({"m": [1, 2]}, {"m": [1, 3]}) == "m: model [1, 2], cache [1, 3]"
    assert first_difference(1, 2) == "(value): model 1, cache 2"
