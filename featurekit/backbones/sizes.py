"""Several input sizes in one extraction: each image embedded at each size, blocks side by side.

`with_sizes(backbone, (224, 288))` returns a backbone whose rows hold, size-major, the embedding of
the image resized (by the backbone's own eval geometry) to 224 px, then to 288 px: one block per
size, or one per (size, layer, pool) after `with_layers`. The extraction engine decodes each image
once and makes one uint8 tensor per size from it (`featurekit/extract/engine.py`); `embed` itself
still embeds one size's batch, `size_dim` columns. Block names: `224px`, or `224px.layer-1.avg`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from featurekit.backbones.backbone import Backbone
from featurekit.backbones.layers import FeatureBlock
from featurekit.backbones.preprocess import MAX_IMG_SIZE
from featurekit.errors import InvalidInputError


@dataclass(frozen=True)
class SizeBlock:
    """Columns `start:stop` of a cache row hold the image embedded at `img_size` px (and, after
    `with_layers`, the `inner` (layer, pool) block of that embedding)."""

    img_size: int
    start: int
    stop: int
    inner: FeatureBlock | None = None

    @property
    def name(self) -> str:
        return f"{self.img_size}px" + (f".{self.inner.name}" if self.inner is not None else "")

    def to_dict(self) -> dict[str, object]:
        record: dict[str, object] = {"name": self.name, "img_size": self.img_size}
        if self.inner is not None:
            record.update(layer=self.inner.layer, pool=self.inner.pool)
        record.update(start=self.start, stop=self.stop)
        return record


def parse_img_sizes(text: str) -> tuple[int, ...]:
    """'224,288' → (224, 288), checked; a one-line error for anything else."""
    parts = [part.strip() for part in str(text).split(",")]
    try:
        sizes = tuple(int(part) for part in parts)
    except ValueError:
        raise InvalidInputError(
            f"--img-size {text!r}: expected whole numbers of pixels, comma-separated, e.g. 224 or 224,288"
        ) from None
    return check_img_sizes(sizes)


def check_img_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """The sizes as a tuple; InvalidInputError unless each is an integer in 1..MAX_IMG_SIZE, once."""
    sizes = tuple(sizes)
    if not sizes:
        raise InvalidInputError("img_size: give at least one size in pixels, e.g. 224 or 224,288")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_IMG_SIZE:
            raise InvalidInputError(
                f"img_size {size!r} is invalid; use an integer from 1 to {MAX_IMG_SIZE} (several: 224,288)"
            )
    if len(set(sizes)) != len(sizes):
        raise InvalidInputError(
            f"img_size {','.join(map(str, sizes))}: each size at most once (e.g. 224,288)"
        )
    return sizes


def with_sizes(backbone: Backbone, sizes: Sequence[int]) -> Backbone:
    """`backbone` embedding each image at each of `sizes`, side by side (size-major).

    One size is today's single-size backbone at that size (no blocks, nothing new recorded).
    Apply `with_layers` first: its (layer, pool) blocks are repeated for every size.
    """
    sizes = check_img_sizes(sizes)
    preprocess = replace(backbone.preprocess, img_size=sizes[0])
    if len(sizes) == 1:
        return replace(backbone, preprocess=preprocess)
    if len(backbone.img_sizes) > 1:
        raise InvalidInputError("with_sizes: this backbone already embeds several sizes")
    size_dim = backbone.feature_dim
    inner: tuple[FeatureBlock | None, ...] = tuple(backbone.blocks) or (None,)
    blocks: list[SizeBlock] = []
    for k, size in enumerate(sizes):
        offset = k * size_dim
        for block in inner:
            start, stop = (0, size_dim) if block is None else (block.start, block.stop)
            blocks.append(SizeBlock(size, offset + start, offset + stop, block))
    return replace(
        backbone,
        preprocess=preprocess,
        img_sizes=sizes,
        blocks=tuple(blocks),
        feature_dim=size_dim * len(sizes),
    )
