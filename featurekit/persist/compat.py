"""Does a saved model fit the features it is about to be applied to?"""

from __future__ import annotations

from typing import Any

from featurekit.errors import ProvenanceMismatchError

FEATURE_DIM = "feature_dim"
PROVENANCE_KEY = "provenance_key"
PROVENANCE = "provenance"
CLASS_NAMES = "class_names"

_MISSING = "<missing>"


def check_compatible(
    metadata: dict[str, Any],
    *,
    provenance_key: str,
    feature_dim: int,
    provenance: dict[str, Any] | None = None,
) -> None:
    """Raise ProvenanceMismatchError unless the model was fit on features like these.

    Compares the feature dimension, then the cache's provenance key; when the keys differ and both
    provenance dicts are at hand, the message names the first differing field (dotted path).
    """
    model_dim = metadata.get(FEATURE_DIM)
    if model_dim is None:
        raise ProvenanceMismatchError(
            f"the model file records no {FEATURE_DIM!r}, so it cannot be checked against these features; "
            "refit the head with featurekit"
        )
    if int(model_dim) != int(feature_dim):
        raise ProvenanceMismatchError(
            f"feature dimension differs: model {model_dim}, cache {feature_dim}; "
            "use features from the backbone the model was fit on, or refit the head"
        )
    model_key = metadata.get(PROVENANCE_KEY)
    if model_key == provenance_key:
        return
    model_prov = metadata.get(PROVENANCE)
    diff = None
    if isinstance(model_prov, dict) and provenance is not None:
        diff = first_difference(model_prov, provenance)
    what = f"{diff} " if diff else ""
    raise ProvenanceMismatchError(
        f"features differ from those the model was fit on: {what}(provenance key: model {model_key}, "
        f"cache {provenance_key}); extract features with the model's settings or refit the head"
    )


def first_difference(model: Any, cache: Any, *, path: str = "") -> str | None:
    """`"dotted.field: model X, cache Y"` for the first (sorted) differing field, or None if equal."""
    if isinstance(model, dict) and isinstance(cache, dict):
        for key in sorted(set(model) | set(cache), key=str):
            sub = f"{path}.{key}" if path else str(key)
            diff = first_difference(model.get(key, _MISSING), cache.get(key, _MISSING), path=sub)
            if diff:
                return diff
        return None
    if _normalise(model) == _normalise(cache):
        return None
    return f"{path or '(value)'}: model {_normalise(model)}, cache {_normalise(cache)}"


def _normalise(value: Any) -> Any:
    # JSON turns tuples into lists: (0.5, 0.5) in a cache equals [0.5, 0.5] in a model file.
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value
