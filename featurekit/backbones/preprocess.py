"""Resolve a backbone's preprocessing: its own data config, overridden by explicit options."""

from __future__ import annotations

import logging
import math
from typing import Any

from torch import nn

from featurekit.config import INTERPOLATIONS, RESIZE_MODES, Preprocess, PreprocessOverrides
from featurekit.errors import InvalidInputError

logger = logging.getLogger(__name__)

MAX_IMG_SIZE = 4096  # beyond this a typo is likelier than intent (and memory runs out)

# timm crop_mode <-> our resize_mode
_FROM_TIMM_CROP_MODE = {"center": "crop", "squash": "squash", "border": "border"}
_TO_TIMM_CROP_MODE = {v: k for k, v in _FROM_TIMM_CROP_MODE.items()}


def resolve_preprocess(model: nn.Module, *, overrides: PreprocessOverrides | None = None) -> Preprocess:
    """The model's data config (timm `resolve_model_data_config`) with `overrides` applied and checked."""
    from timm.data import resolve_model_data_config

    config: dict[str, Any] = resolve_model_data_config(model)
    input_size = tuple(config["input_size"])
    if input_size[1] != input_size[2]:
        logger.warning(
            "%s has a non-square input size %s; using %d", type(model).__name__, input_size, input_size[1]
        )
    interpolation = str(config.get("interpolation") or "bicubic")
    if interpolation not in INTERPOLATIONS:
        logger.warning("unsupported interpolation %r in the model's config; using bicubic", interpolation)
        interpolation = "bicubic"
    crop_mode = str(config.get("crop_mode") or "center")
    defaults = Preprocess(
        img_size=int(input_size[1]),
        resize_mode=_FROM_TIMM_CROP_MODE.get(crop_mode, "crop"),
        crop_pct=float(config.get("crop_pct") or 1.0),
        interpolation=interpolation,
        mean=_triple(config["mean"]),
        std=_triple(config["std"]),
    )
    if overrides is None:
        return defaults
    validate_overrides(overrides)
    chosen = {k: v for k, v in vars(overrides).items() if v is not None}
    if "mean" in chosen:
        chosen["mean"] = _triple(chosen["mean"])
    if "std" in chosen:
        chosen["std"] = _triple(chosen["std"])
    merged = {**defaults.to_dict(), **chosen}
    return Preprocess.from_dict(merged)


def validate_overrides(overrides: PreprocessOverrides) -> None:
    """Raise InvalidInputError naming the allowed values for any override out of range."""
    o = overrides
    if o.img_size is not None and (
        isinstance(o.img_size, bool) or not isinstance(o.img_size, int) or not 0 < o.img_size <= MAX_IMG_SIZE
    ):
        raise InvalidInputError(
            f"img_size {o.img_size!r} is invalid; use an integer from 1 to {MAX_IMG_SIZE}"
        )
    if o.resize_mode is not None and o.resize_mode not in RESIZE_MODES:
        raise InvalidInputError(
            f"resize_mode {o.resize_mode!r} is invalid; use one of {', '.join(RESIZE_MODES)}"
        )
    if o.interpolation is not None and o.interpolation not in INTERPOLATIONS:
        raise InvalidInputError(
            f"interpolation {o.interpolation!r} is invalid; use one of {', '.join(INTERPOLATIONS)}"
        )
    if o.crop_pct is not None and (
        isinstance(o.crop_pct, bool)
        or not isinstance(o.crop_pct, int | float)
        or not math.isfinite(o.crop_pct)
        or not 0 < o.crop_pct <= 1
    ):
        raise InvalidInputError(f"crop_pct {o.crop_pct!r} is invalid; use a number in (0, 1]")
    for field, value in (("mean", o.mean), ("std", o.std)):
        if value is None:
            continue
        if not _is_triple(value):
            raise InvalidInputError(
                f"{field} {value!r} is invalid; give 3 finite numbers (one per RGB channel)"
            )
        if field == "std" and any(v <= 0 for v in value):
            raise InvalidInputError(f"std {value!r} is invalid; every value must be > 0")


def timm_transform_kwargs(pre: Preprocess) -> dict[str, Any]:
    """Keyword arguments for `timm.data.create_transform(**kw, is_training=False)` (the eval transform)."""
    return {
        "input_size": (3, pre.img_size, pre.img_size),
        "interpolation": pre.interpolation,
        "mean": tuple(pre.mean),
        "std": tuple(pre.std),
        "crop_pct": pre.crop_pct,
        "crop_mode": _TO_TIMM_CROP_MODE[pre.resize_mode],
    }


def _is_triple(value: object) -> bool:
    if not isinstance(value, tuple | list) or len(value) != 3:
        return False
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)


def _triple(value: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in value)
    return (a, b, c)
