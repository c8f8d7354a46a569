"""The provenance key: a digest of every setting that changes feature values.

Settings that do not change features (library versions, creation time, batch size, workers,
where the weights file lives) are recorded in the provenance but left out of the key, so they
never invalidate a cache.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

# Dotted paths of provenance fields that are recorded but never part of the key.
UNKEYED_FIELDS = frozenset(
    {
        "versions",
        "created_at",
        "extraction",
        "weights.spec",
        "weights.file_sha256",
        "weights.seed",
    }
)


def _keyed(value: Any, prefix: str = "") -> Any:
    if not isinstance(value, dict):
        return value
    out = {}
    for name, item in value.items():
        dotted = f"{prefix}{name}"
        if dotted not in UNKEYED_FIELDS:
            out[name] = _keyed(item, prefix=f"{dotted}.")
    return out


def keyed_provenance(provenance: dict[str, Any]) -> dict[str, Any]:
    """The part of a provenance record that the key covers."""
    return cast(dict[str, Any], _keyed(provenance))


def provenance_key(provenance: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the keyed fields (stable across dict order)."""
    canonical = json.dumps(keyed_provenance(provenance), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_DERIVED_FIELDS = frozenset({"dim", "layout"})


def first_difference(old: Any, new: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first keyed field (dotted path) whose value differs, with both values, or None.

    Derived fields (dim, layout) are compared only when every other field is equal, so a message
    names the setting the user changed (`preprocess.img_size`, not the `features.dim` it implies)."""
    return _first_difference(old, new, prefix, derived=False) or _first_difference(
        old, new, prefix, derived=True
    )


def _first_difference(old: Any, new: Any, prefix: str, *, derived: bool) -> tuple[str, Any, Any] | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for name in sorted(set(old) | set(new), key=lambda n: (n in _DERIVED_FIELDS, n)):
            dotted = f"{prefix}{name}"
            if dotted in UNKEYED_FIELDS or (name in _DERIVED_FIELDS and not derived):
                continue
            found = _first_difference(old.get(name), new.get(name), f"{dotted}.", derived=derived)
            if found is not None:
                return found
        return None
    if _normalise(old) != _normalise(new):
        return (prefix.rstrip("."), old, new)
    return None


def _normalise(value: Any) -> Any:
    # JSON round trips turn tuples into lists; compare them as equal.
    if isinstance(value, tuple | list):
        return [_normalise(v) for v in value]
    return value
