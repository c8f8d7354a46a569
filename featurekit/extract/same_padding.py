"""TensorFlow "same" padding without copying the activations: timm's Conv2dSame as one convolution.

timm's `tf_*` models (the EfficientNet-Lite weights featurekit ships offline among them) pad their
stride-2 convolutions the TensorFlow way. On an even input the total padding is odd, so the extra
row and column go to the bottom and right, which the symmetric `padding` of torch's convolution
cannot express. So `Conv2dSame` first copies the whole activation into a padded tensor (`F.pad`).
On the CPU that copy was 17 % of Lite0's forward pass (32 photos at 224 px: 0.74 of 4.4 s, profiled).

A padding of (lo, lo + 1) on an axis equals a symmetric padding of lo + 1 with the kernel made one
tap longer by a leading zero tap: the output at i reads padded positions s·i … s·i + k, and the
zero tap spends the extra leading row. Every product of the original kernel is made as before, and
the zero tap adds exact zeros (the inputs are finite). An even total is symmetric already. So
`SamePaddedConv` runs one convolution with no copy. It falls back to timm's pad-then-convolve only
for an odd total with dilation, where the trick does not apply.

On the CPU's oneDNN kernels the features came out bit-identical to timm's for Lite0
(bench/fold_batchnorm.py measures the agreement beside the speed; tests/unit/test_extract_same_padding.py
bounds it). Only CPU extraction rewrites the model this way: a 4×4 depthwise kernel against a
copy has not been measured on a GPU, where `--compile` fuses the pad anyway.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers.conv2d_same import Conv2dSame
from timm.layers.padding import get_same_padding
from torch import nn


class SamePaddedConv(nn.Module):
    """A `Conv2dSame` as one convolution (module docstring); the original kept as `conv`."""

    def __init__(self, conv: Conv2dSame) -> None:
        super().__init__()
        self.conv = conv
        weight = conv.weight.detach()
        # Kernels with a leading zero tap on the height axis, the width axis, or both: made now,
        # outside inference_mode, so every later forward pass can use them.
        self.weight_h: torch.Tensor
        self.weight_w: torch.Tensor
        self.weight_hw: torch.Tensor
        self.register_buffer("weight_h", F.pad(weight, (0, 0, 1, 0)), persistent=False)
        self.register_buffer("weight_w", F.pad(weight, (1, 0, 0, 0)), persistent=False)
        self.register_buffer("weight_hw", F.pad(weight, (1, 0, 1, 0)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        pad_h = int(get_same_padding(int(x.shape[-2]), kh, sh, dh))
        pad_w = int(get_same_padding(int(x.shape[-1]), kw, sw, dw))
        odd_h, odd_w = pad_h % 2 == 1, pad_w % 2 == 1
        if (odd_h and dh != 1) or (odd_w and dw != 1):
            return conv(x)  # timm's own pad-then-convolve
        weights: dict[tuple[bool, bool], torch.Tensor] = {
            (False, False): conv.weight,
            (True, False): self.weight_h,
            (False, True): self.weight_w,
            (True, True): self.weight_hw,
        }
        weight = weights[(odd_h, odd_w)]
        padding = ((pad_h + 1) // 2, (pad_w + 1) // 2)  # lo + 1 on an odd axis, lo on an even one
        return F.conv2d(x, weight, conv.bias, conv.stride, padding, conv.dilation, conv.groups)


def fold_same_padding(model: nn.Module) -> int:
    """Replace every `Conv2dSame` in `model` (exactly that type) by a `SamePaddedConv`, in place;
    the number replaced (0 the second time). Call it after any change to those convolutions'
    weights (BatchNorm folding): the wrapper copies them."""
    replaced = 0
    for parent in list(model.modules()):
        if isinstance(parent, SamePaddedConv):
            continue  # its `conv` is the original, kept for the dilated fallback
        for name, child in list(parent.named_children()):
            if type(child) is Conv2dSame:
                setattr(parent, name, SamePaddedConv(child))
                replaced += 1
    return replaced


def count_same_padding(model: nn.Module) -> int:
    """How many convolutions `fold_same_padding` would replace."""
    wrapped = {id(m.conv) for m in model.modules() if isinstance(m, SamePaddedConv)}
    return sum(1 for m in model.modules() if type(m) is Conv2dSame and id(m) not in wrapped)
