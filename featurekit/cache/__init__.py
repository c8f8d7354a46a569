"""The HDF5 feature cache: schema, provenance key, atomic writes, reading into a FeatureSet.

No torch here: a user fitting heads on a cache from another machine never pays for CUDA.
"""

from featurekit.cache.featureset import FeatureSet, RowTable
from featurekit.cache.provenance import first_difference, keyed_provenance, provenance_key
from featurekit.cache.store import (
    CachedRows,
    cache_info,
    load_features,
    open_cached_rows,
    read_provenance,
    remove_temporaries,
    write_cache,
    write_cache_blocks,
)

__all__ = [
    "CachedRows",
    "FeatureSet",
    "RowTable",
    "cache_info",
    "first_difference",
    "keyed_provenance",
    "load_features",
    "open_cached_rows",
    "provenance_key",
    "read_provenance",
    "remove_temporaries",
    "write_cache",
    "write_cache_blocks",
]
