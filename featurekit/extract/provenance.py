"""How every row of a cache was made: the provenance record written with the features."""

from __future__ import annotations

import platform
import socket
from datetime import UTC, datetime
from typing import Any

import timm
import torch
import torchvision

import featurekit
from featurekit.backbones import Backbone
from featurekit.cache.runs import new_run_record

# Bump when extraction code changes feature values for identical settings.
FEATURE_VERSION = 1


def build_provenance(
    backbone: Backbone, *, precision: str, extraction: dict[str, Any], tta: str = "none"
) -> dict[str, Any]:
    """The provenance record. `extraction` holds settings that do not change features (unkeyed)."""
    return {
        "backbone": backbone.name,
        "weights": backbone.weights.to_dict(),
        "preprocess": _preprocess_record(backbone),
        "features": _features_record(backbone, tta),
        "precision": precision,
        "feature_version": FEATURE_VERSION,
        "extraction": extraction,
        "versions": library_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def library_versions() -> dict[str, str]:
    return {
        "featurekit": featurekit.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
    }


def _preprocess_record(backbone: Backbone) -> dict[str, Any]:
    record = backbone.preprocess.to_dict()
    if len(backbone.img_sizes) > 1:  # several input sizes (with_sizes): img_size is their list
        record["img_size"] = list(backbone.img_sizes)
    return record


def _features_record(backbone: Backbone, tta: str) -> dict[str, Any]:
    if not backbone.layers:
        record: dict[str, Any] = {
            "layer": "pre_logits",
            "pool": "model default",
            "dim": backbone.feature_dim,
            "tta": tta,
        }
        if backbone.blocks:  # one block per input size (with_sizes)
            record["layout"] = [block.to_dict() for block in backbone.blocks]
        return record
    return {
        "layer": list(backbone.layers),
        "pool": list(backbone.pools),
        "dim": backbone.feature_dim,
        "tta": tta,
        # "layout" sorts after "layer", so a mismatch message names the layers first.
        "layout": [block.to_dict() for block in backbone.blocks],
    }


def build_run_record(
    provenance: dict[str, Any], *, resolved: dict[str, Any], rank: int = 0, world: int = 1
) -> dict[str, Any]:
    """This process's run record (cache/runs.py): what was asked for (`provenance["extraction"]`),
    what it resolved to on this machine, this process's library versions, host and torchrun rank.
    Journal units add the batch sizes their rows were computed at."""
    return new_run_record(
        host=socket.gethostname(),
        rank=rank,
        world=world,
        precision=provenance["precision"],
        requested=provenance["extraction"],
        resolved=resolved,
        versions=library_versions(),
    )
