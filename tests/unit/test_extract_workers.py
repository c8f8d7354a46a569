"""How many loader processes extraction starts by default."""

from __future__ import annotations

import pytest
import torch

from featurekit.extract.engine import default_workers


@pytest.mark.parametrize(("cores", "expected"), [(1, 0), (2, 0), (4, 0), (6, 0), (8, 1), (16, 2), (64, 8)])
def test_cpu_decodes_in_process_until_cores_are_plenty(cores: int, expected: int) -> None:
    assert default_workers(torch.device("cpu"), cores) == expected


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (16, 8), (64, 8)])
def test_gpu_uses_one_worker_per_spare_core_up_to_8(cores: int, expected: int) -> None:
    assert default_workers(torch.device("cuda"), cores) == expected
