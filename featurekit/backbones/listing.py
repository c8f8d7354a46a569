"""Which backbones exist, and which of them work on this machine without a network."""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass

from featurekit.backbones import hub
from featurekit.backbones.offline import OFFLINE_PACKAGES, package_checkpoint, package_for
from featurekit.backbones.torchvision_adapter import TV_PREFIX, supported_tv_names, tv_weights_enum

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    offline: bool  # pretrained weights usable without a network on this machine
    weights_source: str  # "package:<dist>", "hub-cache", "hub" (needs a network) or "none"


def list_backbones(pattern: str = "*", *, offline_only: bool = True) -> list[BackboneInfo]:
    """Backbones whose names match `pattern` (fnmatch); by default only those usable offline.

    torchvision backbones (`tv:<name>`) are listed when the pattern starts with "tv:".
    """
    import timm

    names = sorted(set(timm.list_models(pattern)) | set(fnmatch.filter(OFFLINE_PACKAGES, pattern)))
    if pattern.startswith(TV_PREFIX):
        names = fnmatch.filter(supported_tv_names(), pattern)
    infos = [_info(name) for name in names]
    return [i for i in infos if i.offline] if offline_only else infos


def _info(name: str) -> BackboneInfo:
    package = package_for(name)
    if package is not None and package_checkpoint(package) is not None:
        return BackboneInfo(name, True, f"package:{package.distribution}")
    if name.startswith(TV_PREFIX):
        url = str(tv_weights_enum(name, None).url)
        cached = hub.cached_url_file(url) is not None
        return BackboneInfo(name, cached, "hub-cache" if cached else "hub")
    cfg = hub.pretrained_cfg_for(name)
    if not cfg or not (cfg.get("hf_hub_id") or cfg.get("url")):
        return BackboneInfo(name, False, "none")
    cached = hub.cached_weights_file(cfg) is not None
    return BackboneInfo(name, cached, "hub-cache" if cached else "hub")
