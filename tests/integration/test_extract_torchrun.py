"""`torchrun --nproc-per-node 2 ... featurekit extract`: two CPU ranks (gloo), one cache, rows in order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.cache import load_features
from featurekit.cli.main import main

pytestmark = pytest.mark.slow

ARGS = ["--backbone", "test_resnet", "--weights", "random", "--no-progress", "--workers", "0"]
ARGS += ["--img-size", "32", "--batch-size", "4", "--device", "cpu"]


def test_two_ranks_write_one_cache_equal_to_a_single_process_run(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    data = tmp_path / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        for i in range(9):  # 18 rows: uneven batches on each rank
            Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(
                data / cls / f"{i}.png"
            )
    (data / "b" / "broken.png").write_bytes(b"not a png")  # a failure on one rank is reported by rank 0

    single = tmp_path / "single.h5"
    assert main(["extract", str(data), *ARGS, "--out", str(single)]) == 0
    split = tmp_path / "split.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "featurekit", "extract", str(data), *ARGS, "--out", str(split)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr

    one, two = load_features(single), load_features(split)
    assert len(two) == 18
    assert list(two.rows.paths) == list(one.rows.paths)  # the source's order, not the ranks'
    np.testing.assert_allclose(two.X, one.X, rtol=1e-5, atol=1e-6)
    assert two.provenance_key == one.provenance_key
    assert not list(tmp_path.glob("split.h5.part-*")) and not list(tmp_path.glob(".split.h5*"))
    assert "b/broken.png" in (tmp_path / "split.h5.bad-inputs.csv").read_text()
