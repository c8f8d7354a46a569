"""Pretrained weights from the Hugging Face hub (or timm's URLs): local cache first, fail fast offline.

huggingface_hub retries a failing connection for ~25 s, so reachability is probed first with a
short TCP connect; an offline machine gets a WeightsUnavailableError within seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from featurekit.errors import WeightsUnavailableError

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "FEATUREKIT_OFFLINE")
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def is_offline_mode() -> bool:
    """True when the user asked for no network (HF_HUB_OFFLINE / FEATUREKIT_OFFLINE)."""
    if any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"} for v in OFFLINE_ENV_VARS):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def pretrained_cfg_for(name: str) -> dict[str, Any] | None:
    """timm's default pretrained config for a name (tag honoured), or None when it has none."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return cfg.to_dict() if cfg is not None else None


def cached_weights_file(cfg: dict[str, Any]) -> Path | None:
    """The pretrained file already in the local HF cache or torch hub cache, without any network."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, revision = str(hub_id).partition("@")
        for filename in _hf_filenames(cfg):
            found = try_to_load_from_cache(repo_id, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    url = cfg.get("url")
    return cached_url_file(str(url)) if url else None


def cached_url_file(url: str) -> Path | None:
    """The URL's file in the torch hub checkpoint cache, if it is there."""
    path = _torch_hub_path(url)
    return path if path.is_file() else None


def fetch_weights_file(name: str, cfg: dict[str, Any], *, timeout_s: float | None = None) -> Path:
    """Return a local file with `name`'s pretrained weights, downloading it if needed and possible.

    `timeout_s` (default `PROBE_TIMEOUT_S`) bounds the reachability probe and the ETag request.
    """
    timeout = PROBE_TIMEOUT_S if timeout_s is None else timeout_s
    cached = cached_weights_file(cfg)
    if cached is not None:
        logger.info("using cached pretrained weights for %s: %s", name, cached)
        return cached
    if is_offline_mode():
        raise unavailable(
            name, "offline mode is set (HF_HUB_OFFLINE/FEATUREKIT_OFFLINE) and they are not cached"
        )
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import constants

        return _download(name, constants.ENDPOINT, lambda: _hf_download(name, cfg, timeout), timeout)
    url = cfg.get("url")
    if url:
        return _download(name, str(url), lambda: _url_download(str(url)), timeout)
    raise unavailable(name, "timm lists no download location for them")


def download_url(name: str, url: str, *, timeout_s: float | None = None) -> Path:
    """A URL's file in the torch hub cache (torchvision weights); cache first, then a probed download."""
    cached = cached_url_file(url)
    if cached is not None:
        return cached
    if is_offline_mode():
        raise unavailable(
            name, "offline mode is set (HF_HUB_OFFLINE/FEATUREKIT_OFFLINE) and they are not cached"
        )
    return _download(
        name, url, lambda: _url_download(url), PROBE_TIMEOUT_S if timeout_s is None else timeout_s
    )


def unavailable(name: str, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"the pretrained weights for {name!r} could not be downloaded ({reason}); pass --weights FILE "
        "(a local checkpoint) or --weights random, or pick a backbone that works offline "
        "(`featurekit list backbones`)"
    )


def probe(url: str, *, timeout_s: float) -> str | None:
    """None when `url`'s host accepts a TCP connection within `timeout_s`, else the reason.

    Runs in a daemon thread because DNS resolution has no timeout of its own.
    """
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"cannot reach {host}:{port}: {exc}")

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
    return outcome[0] if outcome else f"cannot reach {host}:{port}: no answer within {timeout_s:g} s"


def _download(name: str, url: str, download: Callable[[], Path], timeout_s: float) -> Path:
    reason = probe(url, timeout_s=timeout_s)
    if reason is not None:
        raise unavailable(name, reason)
    try:
        return download()
    except WeightsUnavailableError:
        raise
    except Exception as exc:  # network/HTTP errors come in many types (requests, httpx, urllib, OSError)
        raise unavailable(name, f"{type(exc).__name__}: {exc}") from exc


def _hf_download(name: str, cfg: dict[str, Any], timeout_s: float) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:  # huggingface_hub < 0.23 kept them in utils
        from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    repo_id, _, revision = str(cfg["hf_hub_id"]).partition("@")
    for filename in _hf_filenames(cfg):
        try:
            path = hf_hub_download(repo_id, filename, revision=revision or None, etag_timeout=timeout_s)
        except LocalEntryNotFoundError as exc:  # subclass of EntryNotFoundError: a network failure
            raise unavailable(name, str(exc).splitlines()[0]) from exc
        except EntryNotFoundError:
            continue  # this repo has the other file format
        return Path(path)
    raise unavailable(name, f"{repo_id} has none of {', '.join(_hf_filenames(cfg))}")


def _url_download(url: str) -> Path:
    target = _torch_hub_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(target), progress=False)
    return target


def _hf_filenames(cfg: dict[str, Any]) -> tuple[str, ...]:
    explicit = cfg.get("hf_hub_filename")
    return (str(explicit),) if explicit else HF_WEIGHT_FILES


def _torch_hub_path(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
