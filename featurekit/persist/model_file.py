"""Safe model files: skops (no pickle) written atomically, loaded only with allow-listed types."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import logging
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import sklearn

import featurekit
from featurekit.errors import InvalidInputError, PathNotFoundError, UnsafeModelFileError
from featurekit.persist.allowlist import allowed_types

logger = logging.getLogger(__name__)

FORMAT = "featurekit-model"
FORMAT_VERSION = 1
RESERVED_KEYS = ("format", "format_version", "created_at", "versions")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
PICKLE_REFUSED = (
    "pickle files can run arbitrary code; pass --trust-pickle (trust_pickle=True) only for files "
    "you made yourself"
)


def _skops_io() -> ModuleType:
    """skops.io, imported without dragging torch in.

    Importing skops.io walks every scikit-learn subpackage (to list trusted estimators), and that walk
    imports `sklearn.externals.array_api_compat.torch`, i.e. torch (seconds, and CUDA libraries) when it
    is installed. Hiding torch for the duration makes that one subpackage fail to import, which the walk
    ignores; nothing featurekit saves needs it. A torch that is already loaded is left alone.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        import skops.io
    finally:
        if hide and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return skops.io


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    metadata: dict[str, Any]


def save_model(path: Path, estimator: Any, *, metadata: dict[str, Any]) -> Path:
    """Write `estimator` and `metadata` to a skops file at `path` atomically; returns the path.

    featurekit adds `format`, `format_version`, `created_at` and `versions` to the metadata.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise InvalidInputError(f"{path}: featurekit writes skops files, not pickle; use a .skops suffix")
    clash = sorted(set(metadata) & set(RESERVED_KEYS))
    if clash:
        raise InvalidInputError(f"metadata keys {clash} are reserved; featurekit sets them itself")
    full = {
        **metadata,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
    }
    try:
        metadata_json = json.dumps(full, default=_json_default, sort_keys=True)
    except TypeError as exc:
        raise InvalidInputError(f"model metadata must be JSON-serialisable: {exc}") from exc
    payload = {"format": FORMAT, "metadata": metadata_json, "estimator": estimator}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            _skops_io().dump(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp_name).replace(path)  # os.replace: readers see the old file or the new one, never half of one
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    logger.info("saved model to %s", path)
    return path


def load_model(path: Path, *, trust_pickle: bool = False) -> LoadedModel:
    """Read a model file. skops files load only if every type is allow-listed; pickle only if trusted."""
    path = Path(path)
    if not path.is_file():
        raise PathNotFoundError(f"model file {path} does not exist")
    data = path.read_bytes()  # read once: the checked bytes are the loaded bytes
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if path.suffix.lower() in PICKLE_SUFFIXES or _looks_like_pickle(data):
            return _load_pickle(path, trust_pickle=trust_pickle)
        raise InvalidInputError(f"{path} is not a featurekit model file (expected a .skops file from `fit`)")
    sio = _skops_io()
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a zip that is not a skops file: corrupt or foreign
        raise InvalidInputError(f"{path} is not a featurekit model file: {exc}") from exc
    allowed = allowed_types()
    unexpected = sorted(set(untrusted) - allowed)
    if unexpected:
        raise UnsafeModelFileError(
            f"{path} contains types featurekit does not allow: {', '.join(unexpected)}; "
            "it was not made by featurekit's heads, so it was not loaded"
        )
    payload = sio.load(io.BytesIO(data), trusted=sorted(allowed))
    return _unpack(path, payload)


# Libraries a head may be built on, recorded when installed (read from package metadata: no import).
OPTIONAL_VERSIONED = ("scipy", "lightgbm", "torch")


def _versions() -> dict[str, str]:
    import skops

    versions = {
        "featurekit": featurekit.__version__,
        "python": ".".join(str(v) for v in sys.version_info[:3]),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "skops": skops.__version__,
    }
    for name in OPTIONAL_VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _unpack(path: Path, payload: Any) -> LoadedModel:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "estimator" not in payload:
        raise InvalidInputError(f"{path} is not a featurekit model file (no {FORMAT!r} header)")
    try:
        metadata = json.loads(payload["metadata"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: unreadable model metadata ({exc})") from exc
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InvalidInputError(
            f"{path} has model format version {version!r}; this featurekit reads up to {FORMAT_VERSION}: "
            "upgrade featurekit"
        )
    saved_sklearn = metadata.get("versions", {}).get("scikit-learn")
    if saved_sklearn and saved_sklearn != sklearn.__version__:
        logger.warning(
            "%s was saved with scikit-learn %s, this is %s; predictions may differ",
            path,
            saved_sklearn,
            sklearn.__version__,
        )
    return LoadedModel(estimator=payload["estimator"], metadata=metadata)


def _load_pickle(path: Path, *, trust_pickle: bool) -> LoadedModel:
    if not trust_pickle:
        raise UnsafeModelFileError(f"{path}: refused to load: {PICKLE_REFUSED}")
    import joblib  # only on the explicitly trusted path

    logger.warning("loading trusted pickle file %s", path)
    obj = joblib.load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _unpack(path, obj)
    if not hasattr(obj, "predict"):
        raise InvalidInputError(f"{path} holds a {type(obj).__name__}, not a fitted estimator")
    return LoadedModel(estimator=obj, metadata={})


def _looks_like_pickle(data: bytes) -> bool:
    # Protocol 2+ pickles start with PROTO (0x80); joblib's compressed files with zlib/gzip/xz magic.
    return (
        data[:1] == b"\x80"
        or data[:2] in (b"\x78\x9c", b"\x78\x01", b"\x78\xda", b"\x1f\x8b")
        or (data[:6] == b"\xfd7zXZ\x00")
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")
