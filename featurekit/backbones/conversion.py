"""Checkpoint key layouts and their renaming into timm's layout.

Detection is by key names only; every converter returns a state dict in the target model's
naming so one strict comparison afterwards catches any conversion mistake.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping

import torch
from torch import nn

from featurekit.errors import InvalidInputError, WeightsMismatchError

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

# Training scripts save {"state_dict": ...} and friends; DataParallel/compile add prefixes.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")


def unwrap_checkpoint(obj: object, *, source: str) -> StateDict:
    """Return the flat name → tensor mapping inside a loaded checkpoint object."""
    for _ in range(3):  # nested wrappers ({"model": {"state_dict": ...}}) are rare but seen
        # A real state dict never maps a name to a dict, so a dict under a wrapper key is the payload.
        inner = next(
            (obj[k] for k in WRAPPER_KEYS if isinstance(obj, Mapping) and isinstance(obj.get(k), Mapping)),
            None,
        )
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise InvalidInputError(f"{source} holds a {type(obj).__name__}, not a state dict of tensors")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InvalidInputError(
            f"{source} holds no tensors (top-level keys: {sorted(map(str, obj))[:10]}); expected a state "
            f"dict, possibly wrapped in one of {', '.join(WRAPPER_KEYS)}"
        )
    skipped = len(obj) - len(tensors)
    if skipped:
        logger.info("%s: ignored %d non-tensor entries", source, skipped)
    return strip_prefixes(tensors)


def strip_prefixes(state_dict: StateDict) -> StateDict:
    for prefix in STRIPPED_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Name the key layout: "efficientnet_pytorch", "torchvision" (non-ResNet torchvision) or "timm".

    timm ResNets share torchvision's key names, so a torchvision ResNet reads as "timm".
    """
    keys = list(state_dict)
    if any(k.startswith(("_conv_stem.", "_blocks.")) for k in keys):
        return "efficientnet_pytorch"
    if any(k.startswith(("features.0.", "encoder.layers.", "conv_proj.")) for k in keys):
        return "torchvision"
    return "timm"


# efficientnet_pytorch block parts -> timm parts. A block with `_expand_conv` is timm's
# InvertedResidual (conv_pw, conv_dw, conv_pwl; bn1-3), one without is DepthwiseSeparableConv.
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.([^.]+)\.(.+)$")


def convert_efficientnet_pytorch(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Rename efficientnet_pytorch keys to timm EfficientNet keys.

    `_blocks.N` is the N-th block of timm's `blocks` flattened in stage order.
    """
    stages = getattr(model, "blocks", None)
    if not isinstance(stages, nn.Sequential):
        raise WeightsMismatchError(
            f"the checkpoint has the efficientnet_pytorch layout, but {type(model).__name__} is not a timm "
            "EfficientNet (no `blocks` stages); use an efficientnet/tf_efficientnet* backbone"
        )
    flat: list[tuple[str, nn.Module]] = [
        (f"blocks.{s}.{b}", block)
        for s, stage in enumerate(stages.children())
        for b, block in enumerate(stage.children())
    ]
    converted: StateDict = {}
    for key, tensor in state_dict.items():
        converted[_rename_efficientnet_pytorch_key(key, flat)] = tensor
    return converted


def _rename_efficientnet_pytorch_key(key: str, flat: list[tuple[str, nn.Module]]) -> str:
    match = _BLOCK_KEY.match(key)
    if match:
        index, part, rest = int(match[1]), match[2], match[3]
        if index >= len(flat):
            return key  # reported as unexpected: the model has fewer blocks
        prefix, block = flat[index]
        table = _INVERTED_RESIDUAL if hasattr(block, "conv_pwl") else _DEPTHWISE_SEPARABLE
        return f"{prefix}.{table[part]}.{rest}" if part in table else key
    head, _, rest = key.partition(".")
    return f"{_TOP_LEVEL[head]}.{rest}" if head in _TOP_LEVEL and rest else key


def _identity(state_dict: StateDict, model: nn.Module) -> StateDict:
    return state_dict


CONVERTERS: dict[str, Callable[[StateDict, nn.Module], StateDict]] = {
    "timm": _identity,
    "torchvision": _identity,  # loads into a `tv:` backbone as is; into timm it will mismatch (hinted)
    "efficientnet_pytorch": convert_efficientnet_pytorch,
}
