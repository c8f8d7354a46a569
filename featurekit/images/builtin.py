"""A real image dataset that ships with a dependency, for the offline demo and tests.

scikit-learn bundles the UCI handwritten digits (1,797 real scans, 8×8, 10 classes), so the
demo needs no network and no data download.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_digits_npz(path: Path) -> Path:
    """Write the digits as an npz source: `images` (N, 8, 8) uint8, `label` (N,), `class_names`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # The scans hold 0..16 ink levels; stretch them to the 0..255 range of 8-bit images.
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    np.savez(tmp, images=images, label=digits.target.astype(np.int64))
    tmp.replace(path)
    return path
