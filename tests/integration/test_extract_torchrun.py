"""`torchrun --nproc-per-node 2 ... featurekit extract`: two CPU ranks (gloo), one cache, rows in order."""

from __future__ import annotations

import json
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

COUNTING_SCRIPT = """
import json, os, sys
from pathlib import Path
from featurekit.cli.main import main
from featurekit.images import hashing

hashed = []
real_hash_file = hashing.hash_file
def counting_hash_file(path):
    hashed.append(str(path))
    return real_hash_file(path)
hashing.hash_file = counting_hash_file
code = main(sys.argv[1:])
(Path(__file__).parent / f"hashed-{os.environ['RANK']}.json").write_text(json.dumps(hashed))
sys.exit(code)
"""

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
    (data / "b" / "empty.png").write_bytes(b"")  # unreadable: found by the rank that hashes it

    single = tmp_path / "single.h5"
    assert main(["extract", str(data), *ARGS, "--out", str(single)]) == 0
    split = tmp_path / "split.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    # `featurekit extract`, recording which files each rank reads to hash them.
    script = tmp_path / "extract_counting_hashes.py"
    script.write_text(COUNTING_SCRIPT)
    command += [str(script), "extract", str(data), *ARGS, "--out", str(split)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    hashed_by = [set(json.loads((tmp_path / f"hashed-{rank}.json").read_text())) for rank in (0, 1)]
    assert not hashed_by[0] & hashed_by[1]  # each file read for hashing by one rank only
    assert len(hashed_by[0]) + len(hashed_by[1]) == 20 and min(map(len, hashed_by)) >= 9

    one, two = load_features(single), load_features(split)
    assert len(two) == 18
    assert list(two.rows.paths) == list(one.rows.paths)  # the source's order, not the ranks'
    np.testing.assert_allclose(two.X, one.X, rtol=1e-5, atol=1e-6)
    assert two.provenance_key == one.provenance_key
    assert not list(tmp_path.glob("split.h5.part-*")) and not list(tmp_path.glob(".split.h5*"))
    bad_inputs = (tmp_path / "split.h5.bad-inputs.csv").read_text()
    assert "b/broken.png" in bad_inputs and "b/empty.png" in bad_inputs
    assert bad_inputs == (tmp_path / "single.h5.bad-inputs.csv").read_text()
