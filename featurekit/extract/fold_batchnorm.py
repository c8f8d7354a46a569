"""Fold each eval-mode BatchNorm into the convolution that feeds it, for float32 inference.

In eval mode BatchNorm is a fixed per-channel affine map, so `bn(conv(x))` equals one convolution
with scaled weights and a bias. Folding removes a full read and write of every convolution's output:
EfficientNet-Lite0 (the offline default) runs 1.25-1.30x faster on the 2-core CPU (236 → 188 ms per
batch of 32 at 224 px, real ImageNet weights), ResNet-50 1.14-1.15x (bench/fold_batchnorm.py). Features
differ from the unfolded model by rounding only (Lite0 on real photos: max abs difference 1.5e-5,
cosine 0.9999998).

Only float32 runs are folded: under bf16/fp16 autocast the folded bias would be rounded to 8 bits of
mantissa, where the separate BatchNorm keeps float32 statistics (and torch.compile, the GPU default,
fuses BatchNorm with the activation anyway).

Which convolution feeds which BatchNorm comes from a torch.fx trace of the pass extraction runs
(`Backbone.forward_pass`: the pre-logits embedding, or `forward_intermediates` under `--layers`,
where e.g. GhostNet's first feature map is the stem convolution's output before its BatchNorm), not
from module order: a pair is folded only when the convolution's output goes to that BatchNorm alone
and each module is called once, under one name. Models fx cannot trace (dynamic shapes,
data-dependent control flow) run unfolded, exactly as before. `fold_batchnorm` changes the model in
place (it must not be trained afterwards: its BatchNorm modules are gone); extraction folds a copy
(`engine.prepare_model`), so a caller's backbone keeps its BatchNorm layers.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import torch
import torch.fx
from timm.layers import BatchNormAct2d, Conv2dSame
from torch import nn

from featurekit.backbones.backbone import pre_logits_features

logger = logging.getLogger(__name__)

# Exact types whose forward applies `weight` and `bias` as stored. Subclasses such as timm's
# StdConv2d standardise the weight inside forward, which would undo a folded scale.
_FOLDABLE_CONVS: tuple[type[nn.Module], ...] = (nn.Conv2d, Conv2dSame)
_FOLDABLE_NORMS: tuple[type[nn.Module], ...] = (nn.BatchNorm2d, BatchNormAct2d)


class ActivationOnly(nn.Module):
    """What remains of a BatchNormAct2d once its affine map is folded: its dropout and activation."""

    def __init__(self, norm: BatchNormAct2d) -> None:
        super().__init__()
        self.drop = norm.drop
        self.act = norm.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


# What a model's embedding pass is, as a function of (model, images): `Backbone.forward_pass()`.
ForwardPass = Callable[[nn.Module, torch.Tensor], torch.Tensor]


class _PassRoot(nn.Module):
    """The pass that extraction runs (`Backbone.forward_pass`), as a traceable root module."""

    def __init__(self, model: nn.Module, forward: ForwardPass) -> None:
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.model, x)


class _LeafTracer(torch.fx.Tracer):
    """Keeps convolutions and norms as single nodes (their forward may branch on input shapes)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, nn.Conv2d | nn.modules.batchnorm._BatchNorm) or super().is_leaf_module(
            m, module_qualified_name
        )


def fold_batchnorm(model: nn.Module, forward: ForwardPass = pre_logits_features) -> int:
    """Fold every eval-mode BatchNorm fed only by a convolution in the pass `forward` runs, in place;
    the number of pairs folded. Never raises for a model it cannot analyse: that model is left as
    it was (0 pairs)."""
    return fold_pairs(model, foldable_pairs(model, forward))


def fold_pairs(model: nn.Module, pairs: list[tuple[str, str]]) -> int:
    """Fold each (conv, norm) of `pairs` (from `foldable_pairs` on this model or a copy of it)."""
    with torch.no_grad():
        for conv_name, norm_name in pairs:
            conv = model.get_submodule(conv_name)
            norm = model.get_submodule(norm_name)
            _fold_into(conv, norm)  # type: ignore[arg-type]
            parent_name, _, leaf = norm_name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            replacement = ActivationOnly(norm) if isinstance(norm, BatchNormAct2d) else nn.Identity()
            setattr(parent, leaf, replacement)
    if pairs:
        logger.debug("folded %d BatchNorm layers into their convolutions", len(pairs))
    return len(pairs)


def foldable_pairs(model: nn.Module, forward: ForwardPass = pre_logits_features) -> list[tuple[str, str]]:
    """(conv, norm) module names, relative to `model`, that can be folded for the pass `forward`
    runs: the conv's only consumer is the norm, each is called once, and neither is registered
    under a second name (fx would name it by its first, and the second would keep the norm)."""
    if model.training or not any(type(m) in _FOLDABLE_NORMS for m in model.modules()):
        return []  # training mode, or nothing to fold (ViTs, ConvNeXt): skip the trace
    root = _PassRoot(model, forward)
    try:
        graph = _LeafTracer().trace(root)
    except Exception as error:  # fx raises many types for untraceable code; unfolded is always correct
        logger.debug("not folding BatchNorm: %s cannot be traced (%s)", type(model).__name__, error)
        return []
    modules = dict(root.named_modules())
    names = Counter(id(m) for _, m in root.named_modules(remove_duplicate=False))
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or type(modules[str(node.target)]) not in _FOLDABLE_NORMS:
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, torch.fx.Node) or source.op != "call_module":
            continue
        conv, norm = modules[str(source.target)], modules[str(node.target)]
        if (
            type(conv) in _FOLDABLE_CONVS
            and len(source.users) == 1
            and calls[source.target] == 1
            and calls[node.target] == 1
            and names[id(conv)] == 1
            and names[id(norm)] == 1
            and _foldable_norm(norm, conv)
        ):
            pairs.append((_relative(str(source.target)), _relative(str(node.target))))
    return pairs


def _relative(name: str) -> str:
    return name.removeprefix("model.")


def _foldable_norm(norm: nn.BatchNorm2d, conv: nn.Conv2d) -> bool:
    return (
        not norm.training
        and norm.running_mean is not None
        and norm.running_var is not None
        and norm.num_features == conv.out_channels
        and conv.weight.dtype == torch.float32
    )


def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """conv ← norm ∘ conv, computed in float64 on the CPU (any device has float32, not all float64)."""
    assert norm.running_mean is not None and norm.running_var is not None  # checked by _foldable_norm

    def exact(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to("cpu", torch.float64)

    mean, var = exact(norm.running_mean), exact(norm.running_var)
    gamma = exact(norm.weight) if norm.weight is not None else torch.ones_like(mean)
    beta = exact(norm.bias) if norm.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + norm.eps)
    bias = exact(conv.bias) if conv.bias is not None else torch.zeros_like(mean)
    device = conv.weight.device
    weight = exact(conv.weight) * scale.reshape(-1, 1, 1, 1)
    conv.weight = nn.Parameter(weight.to(device, torch.float32), requires_grad=False)
    conv.bias = nn.Parameter((beta + (bias - mean) * scale).to(device, torch.float32), requires_grad=False)
