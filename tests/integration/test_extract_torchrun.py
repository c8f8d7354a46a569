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

from featurekit.cache import cache_info, load_features
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


SHORT_LISTING_SCRIPT = """
import dataclasses, os, sys
from featurekit import api
from featurekit.cli.main import main

real_load_image_index = api.load_image_index
def load_image_index(*args, **kwargs):  # rank 1 sees one image fewer, as if the folder changed
    index = real_load_image_index(*args, **kwargs)
    if os.environ["RANK"] == "1":
        index = dataclasses.replace(index, paths=index.paths[:-1], labels=index.labels[:-1])
    return index
api.load_image_index = load_image_index
sys.exit(main(sys.argv[1:]))
"""


def _images(root: Path, rng: np.random.Generator, per_class: int) -> None:
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(
                root / cls / f"{i}.png"
            )


def test_ranks_that_list_different_images_stop_with_one_clear_error(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    data = tmp_path / "data"
    _images(data, rng, per_class=3)
    script = tmp_path / "extract_short_listing.py"
    script.write_text(SHORT_LISTING_SCRIPT)
    out = tmp_path / "c.h5"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += [str(script), "extract", str(data), *ARGS, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    # Every rank raises it at once, none is left waiting in a collective for another. (torchrun stops
    # the other ranks once one has exited, so how many print it before that depends on timing.)
    assert "the ranks listed different images (rank 0: 6 rows, rank 1: 5 rows)" in said, said
    assert "Connection closed" not in said and "gloo" not in said.lower(), said
    assert not out.exists() and not list(tmp_path.glob("c.h5*"))


def test_two_ranks_write_one_cache_equal_to_a_single_process_run(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    data = tmp_path / "data"
    _images(data, rng, per_class=9)  # 18 rows: uneven batches on each rank
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
    runs = cache_info(split)["runs"]  # each rank's rows record that rank's run
    assert sorted((run["rank"], run["world"]) for run in runs) == [(0, 2), (1, 2)]
    assert sum(run["rows"] for run in runs) == 18 and min(run["rows"] for run in runs) >= 8
    assert not list(tmp_path.glob("split.h5.part-*")) and not list(tmp_path.glob(".split.h5*"))
    bad_inputs = (tmp_path / "split.h5.bad-inputs.csv").read_text()
    assert "b/broken.png" in bad_inputs and "b/empty.png" in bad_inputs
    assert bad_inputs == (tmp_path / "single.h5.bad-inputs.csv").read_text()
