from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real datasets not found at {SHARED_DATA} (they sit beside the repository in ../shared/data)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def unpack_cifar_subset() -> Callable[[Path, int], Path]:
    """`unpack(root, per_class)`: real CIFAR-10 images for module-scoped fixtures (see below)."""
    return _unpack_cifar_subset


def _unpack_cifar_subset(root: Path, per_class: int) -> Path:
    """The first `per_class` images of each class of the shared CIFAR-10 zip, as root/train/<class>/;
    skips the calling test when the zip is absent."""
    import zipfile

    archive = SHARED_DATA / "cifar10" / "train_2000_per_class.zip"
    if not archive.exists():
        pytest.skip(f"CIFAR-10 subset not found at {archive} (real data sits in ../shared/data)")
    taken: dict[str, int] = {}
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            parts = name.split("/")
            if len(parts) == 3 and parts[2].endswith(".jpg") and taken.get(parts[1], 0) < per_class:
                zf.extract(name, root)
                taken[parts[1]] = taken.get(parts[1], 0) + 1
    assert len(taken) == 10
    return root / "train"
