"""`featurekit demo`: the README's first command, offline, on real images with real weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from featurekit.cli.main import main

pytestmark = pytest.mark.slow


def test_demo_runs_offline_and_reports_real_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", "--workdir", str(tmp_path / "demo"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "held-out accuracy" in out
    records = list((tmp_path / "demo" / "runs").glob("*.json"))
    assert len(records) == 1
    accuracy = json.loads(records[0].read_text())["metrics"]["accuracy"]
    # Pretrained EfficientNet-Lite0 features separate the digits well; random ones would not.
    assert accuracy >= 0.85
    assert f"{accuracy:.1%}" in out
