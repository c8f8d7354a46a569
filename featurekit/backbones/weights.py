"""Weights: provenance record, content hashes, safe checkpoint reading and strict loading."""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featurekit.backbones.conversion import CONVERTERS, StateDict, detect_layout, unwrap_checkpoint
from featurekit.errors import (
    InvalidInputError,
    PathNotFoundError,
    UnsafeModelFileError,
    WeightsMismatchError,
)

logger = logging.getLogger(__name__)

_SHOWN_KEYS = 10
_IGNORED_SUFFIX = "num_batches_tracked"  # BN step counters: never used in eval, differ by source


@dataclass(frozen=True)
class WeightsInfo:
    """Where a backbone's weights came from, and a hash that identifies them whatever the source."""

    spec: str  # "package:<dist>", "file:<abs path>", "hub", "random", "torchvision:<ENUM>"
    sha256: str  # over the loaded state dict (see `state_dict_sha256`)
    file_sha256: str | None = None  # of the file's bytes, when a file was read
    seed: int | None = None  # for "random"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_dict_sha256(model: nn.Module) -> str:
    """sha256 over (name, dtype, shape, raw bytes) of every state-dict entry in sorted order.

    BatchNorm `num_batches_tracked` counters are left out: they do not change outputs and
    differ between otherwise identical checkpoints.
    """
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):
        if name.endswith(_IGNORED_SUFFIX):
            continue
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path: Path) -> StateDict:
    """Read a state dict from .pth/.pt/.bin (weights only, never arbitrary pickles) or .safetensors."""
    if not path.exists():
        raise PathNotFoundError(
            f"weights file {str(path)!r} does not exist; pass an existing checkpoint "
            "(.pth, .pt, .bin or .safetensors), 'random', or leave weights unset for the pretrained ones"
        )
    if not path.is_file():
        raise InvalidInputError(f"weights path {str(path)!r} is not a file; pass a checkpoint file")
    source = f"weights file {str(path)!r}"
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            loaded: object = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise InvalidInputError(f"cannot read {source} as safetensors: {exc}") from exc
    else:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise UnsafeModelFileError(
                f"{source} needs types beyond plain tensors and containers to load, which featurekit refuses "
                "to unpickle; re-save it as a plain state dict (torch.save(model.state_dict(), ...)) or "
                f"as .safetensors ({str(exc).splitlines()[0]})"
            ) from exc
        except (RuntimeError, OSError, EOFError) as exc:
            raise InvalidInputError(f"cannot read {source} with torch.load: {exc}") from exc
    return unwrap_checkpoint(loaded, source=source)


def classifier_names(model: nn.Module) -> tuple[str, ...]:
    """Module names of the classifier, from the model's pretrained_cfg (timm convention)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def load_state_dict_strict(
    model: nn.Module,
    state_dict: StateDict,
    *,
    keep_classifier: bool,
    source: str,
) -> str:
    """Convert `state_dict` to the model's layout and load it with 0 missing / 0 unexpected keys.

    Classifier keys are kept only when `keep_classifier` and they fit; otherwise they are dropped
    and the classifier reset to size 0 (features are all we need). Returns the detected layout.
    """
    layout = detect_layout(state_dict)
    converted = CONVERTERS[layout](state_dict, model)
    heads = classifier_names(model)
    head_keys = {k for k in converted if any(k.startswith(f"{h}.") for h in heads)}
    if keep_classifier and not _fits(model, converted, head_keys, heads):
        logger.info("%s: classifier does not fit %s; dropping it", source, type(model).__name__)
        keep_classifier = False
    if not keep_classifier:
        converted = {k: v for k, v in converted.items() if k not in head_keys}
        remove_classifier(model)

    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing = sorted(k for k in expected if k not in converted and not k.endswith(_IGNORED_SUFFIX))
    unexpected = sorted(k for k in converted if k not in expected and not k.endswith(_IGNORED_SUFFIX))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k])}"
        for k, v in converted.items()
        if k in expected and v.shape != expected[k]
    )
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(_mismatch_message(model, source, layout, missing, unexpected, mismatched))
    loadable = {k: v for k, v in converted.items() if k in expected}
    model.load_state_dict(loadable, strict=False)  # strict=False only tolerates absent BN counters
    logger.info("loaded %s (%s layout, %d tensors)", source, layout, len(loadable))
    return layout


def remove_classifier(model: nn.Module) -> None:
    """Reset the classifier to 0 outputs (timm's `reset_classifier(0)`); features are all we keep."""
    reset = getattr(model, "reset_classifier", None)
    if callable(reset):
        reset(0)


def _fits(model: nn.Module, state_dict: StateDict, head_keys: set[str], heads: tuple[str, ...]) -> bool:
    model_state = model.state_dict()
    model_head = {k for k in model_state if any(k.startswith(f"{h}.") for h in heads)}
    return (
        bool(head_keys)
        and head_keys == model_head
        and all(state_dict[k].shape == model_state[k].shape for k in head_keys)
    )


def _mismatch_message(
    model: nn.Module,
    source: str,
    layout: str,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
) -> str:
    def listing(label: str, keys: list[str]) -> str:
        more = f", ... (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
        return f"{len(keys)} {label}" + (f" [{', '.join(keys[:_SHOWN_KEYS])}{more}]" if keys else "")

    hint = ""
    if layout == "torchvision":
        hint = "; this looks like a torchvision checkpoint: use the backbone name 'tv:<torchvision name>'"
    return (
        f"{source} does not fit {type(model).__name__} (detected {layout} layout): "
        f"{listing('missing', missing)}; {listing('unexpected', unexpected)}; "
        f"{listing('shape-mismatched', mismatched)}{hint}"
    )
