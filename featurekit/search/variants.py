"""The cached variants a search may choose between: which cache, which of its blocks.

A cache made with `extract --layers …` or several `--img-size` values holds blocks side by side
(`layer-1.avg`, `layer-2.max`, `224px`, …); a search tries each block alone and all of them together.
Several caches of the same images (e.g. one with `--tta hflip` and one without, or two backbones) are
variants too. A variant's name is what `fit --blocks` and the model file record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurekit.cache import FeatureSet
from featurekit.cache.featureset import block_columns, block_names

ALL_BLOCKS = "all"


@dataclass(frozen=True)
class FeatureVariant:
    name: str
    cache_index: int
    blocks: tuple[str, ...] | None  # None: every column of the cache


def feature_variants(
    sets: list[FeatureSet], cache_names: list[str], *, blocks: list[str] | None = None
) -> list[FeatureVariant]:
    """Every variant: per cache, each block alone and all blocks together (or the whole cache)."""
    variants: list[FeatureVariant] = []
    for i, (features, cache_name) in enumerate(zip(sets, cache_names, strict=True)):
        held = block_names(features.provenance)
        chosen = list(blocks) if blocks else held
        if blocks:
            block_columns(features.provenance, chosen)  # unknown names raise, listing what the cache holds
        prefix = f"{cache_name}:" if len(sets) > 1 else ""
        if len(chosen) <= 1:
            single = tuple(chosen) if blocks else None
            name = cache_name if len(sets) > 1 else (chosen[0] if chosen else ALL_BLOCKS)
            variants.append(FeatureVariant(name=name, cache_index=i, blocks=single))
            continue
        for block in chosen:
            variants.append(FeatureVariant(name=f"{prefix}{block}", cache_index=i, blocks=(block,)))
        together = tuple(chosen) if blocks else None
        variants.append(FeatureVariant(name=f"{prefix}{ALL_BLOCKS}", cache_index=i, blocks=together))
    return variants


class VariantMatrices:
    """The feature matrix of each variant, built on first use and kept (they are reused every rung)."""

    def __init__(self, sets: list[FeatureSet], variants: list[FeatureVariant]) -> None:
        self.sets = sets
        self.by_name = {v.name: v for v in variants}
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            variant = self.by_name[name]
            features = self.sets[variant.cache_index]
            selected = features.select_blocks(list(variant.blocks) if variant.blocks else None)
            self._cache[name] = selected.X
        return self._cache[name]
