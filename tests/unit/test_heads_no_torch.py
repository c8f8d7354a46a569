"""Fitting, evaluating, saving and recording must not import torch (users without CUDA)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path
import numpy as np
import featurekit.heads, featurekit.evaluation, featurekit.persist, featurekit.reports
from featurekit.heads import make_head
from featurekit.persist import load_model, save_model
X = np.random.default_rng(0).normal(size=(40, 5)); y = (X[:, 0] > 0).astype(np.int64)
path = save_model(Path(sys.argv[1]) / "m.skops", make_head("logreg").fit(X, y), metadata={})
load_model(path)
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH:" + ",".join(loaded))
"""


def test_library_packages_do_not_import_torch(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, check=True, timeout=120
    )
    assert "TORCH:\n" in result.stdout, result.stdout + result.stderr


SEARCH_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
from featurekit import api
from featurekit.cache import RowTable, write_cache
X = np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32); y = (X[:, 0] > 0).astype(np.int64)
rows = RowTable(paths=[f"{i}.jpg" for i in range(120)], content_hashes=[f"{i:064x}" for i in range(120)],
                class_names=["a", "b"], labels=y)
cache = write_cache(Path(sys.argv[1]) / "c.h5", features=X, rows=rows, provenance={"backbone": "x"})
api.search(cache, head="knn", n_trials=4, reports_dir=Path(sys.argv[1]))
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH:" + ",".join(loaded))
"""


def test_a_search_with_a_scikit_learn_head_does_not_import_torch(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SEARCH_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "TORCH:\n" in result.stdout, result.stdout + result.stderr
