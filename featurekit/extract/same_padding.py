"""TensorFlow "same" padding without copying the activations: timm's Conv2dSame as one convolution.

timm's `tf_*` models (the EfficientNet-Lite weights featurekit ships offline among them) pad their
stride-2 convolutions the TensorFlow way. On an even input the total padding is odd, so the extra
row and column go to the bottom and right, which the symmetric `padding` of torch's convolution
cannot express. So `Conv2dSame` first copies the whole activation into a padded tensor (`F.pad`).
On the CPU that copy was 17 % of Lite0's forward time (640 photos at 224 px: 0.74 of 4.4 s, profiled).

A padding of (lo, lo + 1) on an axis equals a symmetric padding of lo + 1 with the kernel made one
tap longer by a leading zero tap: the output at i reads padded positions s·i … s·i + k, and the
zero tap spends the extra leading row. Every product of the original kernel is made as before, and
the zero tap adds exact zeros (the inputs are finite). An even total is symmetric already. So
`SamePaddedConv` runs one convolution with no copy of the activation. It falls back to timm's
pad-then-convolve only for an odd total with dilation, where the trick does not apply.

On the CPU's oneDNN kernels Lite0's features came out bit-identical to timm's in every measurement
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        pad_h = int(get_same_padding(int(x.shape[-2]), kh, sh, dh))
        pad_w = int(get_same_padding(int(x.shape[-1]), kw, sw, dw))
        odd_h, odd_w = pad_h % 2 == 1, pad_w % 2 == 1
        if (odd_h and dh != 1) or (odd_w and dw != 1):
            return conv(x)  # timm's own pad-then-convolve
        weight = conv.weight
        if odd_h or odd_w:
            # The leading zero tap, made from the live weight on each call (a few kB: microseconds),
            # so the wrapper never holds a stale copy of it.
            weight = F.pad(weight, (int(odd_w), 0, int(odd_h), 0))
        padding = ((pad_h + 1) // 2, (pad_w + 1) // 2)  # lo + 1 on an odd axis, lo on an even one
        return F.conv2d(x, weight, conv.bias, conv.stride, padding, conv.dilation, conv.groups)


def fold_same_padding(model: nn.Module) -> int:
    """Replace every `Conv2dSame` in `model` (exactly that type) by a `SamePaddedConv`, in place;
    the number of convolutions wrapped (0 the second time). A convolution registered under several
    names gets one wrapper under all of them."""
    wrappers: dict[int, SamePaddedConv] = {}
    for parent in list(model.modules()):
        if isinstance(parent, SamePaddedConv):
            continue  # its `conv` is the original, kept for the dilated fallback
        for name, child in list(parent._modules.items()):  # every name, aliases included
            if type(child) is Conv2dSame:
                wrapper = wrappers.setdefault(id(child), SamePaddedConv(child))
                setattr(parent, name, wrapper)
    return len(wrappers)


def count_same_padding(model: nn.Module) -> int:
    """How many convolutions `fold_same_padding` would wrap."""
    wrapped = {id(m.conv) for m in model.modules() if isinstance(m, SamePaddedConv)}
    return len({id(m) for m in model.modules() if type(m) is Conv2dSame and id(m) not in wrapped})
