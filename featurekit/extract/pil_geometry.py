"""timm's eval geometry (Resize of the short side, then CenterCrop) as one PIL resize of the crop.

Resizing the whole image and then cropping resamples pixels that are thrown away: at the usual
crop_pct of 0.875, 23 % of the output and the rows feeding it. PIL can resample a source `box`
directly, and its coefficients depend only on each output pixel's centre in source coordinates,
`box_start + (x + 0.5) * scale`, with the filter's support clipped to the whole image, not to the
box. So when, on an axis, the box starts exactly where the crop starts in source coordinates and
every centre is computed without rounding, the result is bit-identical to resize-then-crop.

That holds when the axis's scale (source size / resized size) is a dyadic rational: always on the
short side, which is resized to a power of two such as 256, and on the long side when its size
divides out the same way. Any other axis is resized whole and cropped after, exactly as timm does.
Equal coefficients are not the whole story: PIL may run its two passes in another order for
another output size (Pillow 13 does), which moves the rounding in between. So the first image of
each source size is also checked against timm's steps on a noise image, and a size that does not
match bit for bit keeps the two steps. Every image thus gets timm's pixels
(tests/unit/test_extract_pil_geometry.py compares both paths over many sizes and interpolations).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from fractions import Fraction

import numpy as np
from PIL import Image
from torchvision import transforms as T

PilStep = Callable[[Image.Image], Image.Image]

# PIL's separable resampling filters: these take `box` through ImagingResample with the centre
# arithmetic above. NEAREST goes through an affine transform instead, so it keeps the two steps.
_RESAMPLED = {
    T.InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
    T.InterpolationMode.BICUBIC: Image.Resampling.BICUBIC,
    T.InterpolationMode.LANCZOS: Image.Resampling.LANCZOS,
    T.InterpolationMode.BOX: Image.Resampling.BOX,
    T.InterpolationMode.HAMMING: Image.Resampling.HAMMING,
}

# Every centre (2x + 1) * numerator / (2 * denominator) stays an exact double while its numerator
# is below 2**53: numerators below 2**30 and outputs below 2**21 pixels keep well inside that.
# PIL holds the box itself in single precision, which very large sources can round: the per-size
# check in _ResizeCrop catches that, and any other case this reasoning misses.
_EXACT_NUMERATOR = 1 << 30


def fuse_resize_crop(steps: list[object]) -> PilStep | None:
    """One PIL step equal to `steps` = [Resize(short side), CenterCrop], or None for any other
    pipeline (the caller then runs the steps as they are)."""
    if len(steps) != 2:
        return None
    resize, crop = steps
    # Exactly CenterCrop: a subclass (timm's CenterCropOrPad) may crop differently.
    if (
        not isinstance(resize, T.Resize)
        or not isinstance(crop, T.CenterCrop)
        or type(crop) is not T.CenterCrop
    ):
        return None
    size = resize.size
    if isinstance(size, list | tuple):
        if len(size) != 1:
            return None
        size = size[0]
    resample = _RESAMPLED.get(resize.interpolation)
    if not isinstance(size, int) or resize.max_size is not None or resample is None:
        return None
    crop_size = tuple(int(side) for side in crop.size)
    crop_height, crop_width = (crop_size[0], crop_size[0]) if len(crop_size) == 1 else crop_size[:2]
    return _ResizeCrop(size, (crop_height, crop_width), resample, fallback=T.Compose([resize, crop]))


class _ResizeCrop:
    def __init__(
        self, short_side: int, crop: tuple[int, int], resample: Image.Resampling, fallback: PilStep
    ) -> None:
        self.short_side = short_side
        self.crop_height, self.crop_width = crop
        self.resample = resample
        self.fallback = fallback
        # Source size -> whether the one-resize plan reproduces the two steps (probed once per size).
        self.verified: dict[tuple[int, int], bool] = {}

    def __call__(self, image: Image.Image) -> Image.Image:
        plan = self.plan(*image.size) if image.mode == "RGB" else None
        if plan is None or not self._agrees(image.size, plan):
            return self.fallback(image)
        return _run(image, plan, self.resample)

    def plan(self, width: int, height: int) -> Plan | None:
        """The box resize (and crop after) for a source size, or None when timm's steps must run."""
        return _plan(width, height, self.short_side, self.crop_width, self.crop_height)

    def _agrees(self, size: tuple[int, int], plan: Plan) -> bool:
        # The arithmetic above makes every coefficient equal, but PIL may order its two passes by
        # the output size (Pillow 13 does), which changes the rounding between them. So each source
        # size is checked once on a noise image: for a fixed size both paths are fixed functions,
        # and a difference shows on most of a noise image's pixels.
        known = self.verified.get(size)
        if known is None:
            if len(self.verified) >= _MAX_VERIFIED_SIZES:
                self.verified.clear()
            probe = Image.fromarray(
                np.random.default_rng(size).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            )
            known = np.array_equal(
                np.asarray(_run(probe, plan, self.resample)), np.asarray(self.fallback(probe))
            )
            self.verified[size] = known
        return known


Axis = tuple[tuple[float, float], int, tuple[int, int] | None]  # source box, output size, crop after
Plan = tuple[Axis, Axis]  # (x, y)

_MAX_VERIFIED_SIZES = 65536


@functools.lru_cache(maxsize=4096)  # per image on the loader's hot path; datasets repeat sizes
def _plan(width: int, height: int, short_side: int, crop_width: int, crop_height: int) -> Plan | None:
    if min(width, height) == 0:
        return None
    resized_width, resized_height = resized_size(width, height, short_side)
    if crop_width > resized_width or crop_height > resized_height:
        return None  # CenterCrop pads: keep its exact behaviour
    x = _axis(width, resized_width, crop_width)
    y = _axis(height, resized_height, crop_height)
    if x is None and y is None:
        return None
    return (
        x or _whole_axis(width, resized_width, crop_width),
        y or _whole_axis(height, resized_height, crop_height),
    )


def _run(image: Image.Image, plan: Plan, resample: Image.Resampling) -> Image.Image:
    (x_box, x_out, x_crop), (y_box, y_out, y_crop) = plan
    out = image.resize((x_out, y_out), resample, box=(x_box[0], y_box[0], x_box[1], y_box[1]))
    if x_crop is None and y_crop is None:
        return out
    left, right = x_crop or (0, x_out)
    top, bottom = y_crop or (0, y_out)
    return out.crop((left, top, right, bottom))


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """torchvision's Resize(int) output size: the short side to `short_side`, the long side
    truncated in proportion (`_compute_resized_output_size`)."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = short_side, int(short_side * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def crop_start(resized: int, crop: int) -> int:
    """torchvision's center_crop offset."""
    return round((resized - crop) / 2.0)


def _axis(source: int, resized: int, crop: int) -> Axis | None:
    """The exact source box of the crop on this axis, or None when it has no exact one."""
    if resized == source:
        return None  # no resampling on this axis: a plain crop, done by _whole_axis
    scale = Fraction(source, resized)
    denominator = scale.denominator
    if denominator & (denominator - 1) or scale.numerator >= _EXACT_NUMERATOR:
        return None
    start = crop_start(resized, crop)
    if start == 0 and crop == resized:
        return None
    begin, end = float(start * scale), float((start + crop) * scale)  # exact: dyadic, small
    return (begin, end), crop, None


def _whole_axis(source: int, resized: int, crop: int) -> Axis:
    """Resample the whole axis (as timm does) and crop afterwards."""
    start = crop_start(resized, crop)
    after = None if (start == 0 and crop == resized) else (start, start + crop)
    return (0.0, float(source)), resized, after
