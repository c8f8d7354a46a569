"""Pretrained hub weights: the local cache works offline; without a network the failure is fast.

No test here reaches a hub: connections are refused or hang by monkeypatching, or offline mode is set.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from huggingface_hub import constants as hf_constants
from safetensors.torch import save_file

from featurekit.backbones import create_backbone, list_backbones
from featurekit.backbones import hub as hub_module
from featurekit.errors import WeightsUnavailableError

FAST_S = 30.0


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty HF and torch hub caches, and no offline flags unless a test sets them."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    for var in hub_module.OFFLINE_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    old_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch"))
    yield tmp_path
    torch.hub.set_dir(old_dir)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> socket.socket:
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(hub_module.socket, "create_connection", refuse)


def _expect_fast_failure(name: str, reason: str) -> float:
    start = time.monotonic()
    with pytest.raises(
        WeightsUnavailableError,
        match=rf"weights for {name!r} could not be downloaded \({reason}.*--weights FILE.*--weights random"
        r".*featurekit list backbones",
    ):
        create_backbone(name)
    elapsed = time.monotonic() - start
    assert elapsed < FAST_S
    return elapsed


def test_unreachable_hub_fails_at_once(no_network: None) -> None:
    assert _expect_fast_failure("test_resnet", "cannot reach huggingface.co:443") < 5


def test_hanging_network_fails_within_the_probe_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*args: object, **kwargs: object) -> socket.socket:
        time.sleep(60)
        raise OSError("unreachable")

    monkeypatch.setattr(hub_module.socket, "create_connection", hang)
    monkeypatch.setattr(hub_module, "PROBE_TIMEOUT_S", 1.0)
    assert _expect_fast_failure("test_vit", "cannot reach huggingface.co:443: no answer within 1 s") < 5


def test_offline_env_fails_without_touching_the_network(
    monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _expect_fast_failure("test_efficientnet", "offline mode is set")


def test_torchvision_weights_offline_fail_fast(no_network: None) -> None:
    _expect_fast_failure("tv:resnet18", "cannot reach download.pytorch.org:443")


def _put_in_hf_cache(cache: Path, repo_id: str, filename: str, state: dict[str, torch.Tensor]) -> Path:
    """Lay out one file the way huggingface_hub caches it (refs/main → snapshots/<commit>/file)."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / filename
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_cached_hub_weights_work_offline(
    isolated_caches: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    torch.manual_seed(0)
    state = timm.create_model("test_resnet").state_dict()
    repo_id = timm.create_model("test_resnet").pretrained_cfg["hf_hub_id"]
    _put_in_hf_cache(isolated_caches / "hf", repo_id, "model.safetensors", state)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    backbone = create_backbone("test_resnet")
    assert backbone.weights.spec == "hub"
    loaded = backbone.model.state_dict()
    assert torch.equal(loaded["conv1.0.weight"], state["conv1.0.weight"])
    assert [(i.offline, i.weights_source) for i in list_backbones("test_resnet")] == [(True, "hub-cache")]
    assert list_backbones("test_vit") == []


def test_cached_torchvision_weights_work_offline(isolated_caches: Path, no_network: None) -> None:
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    checkpoints = isolated_caches / "torch" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, checkpoints / Path(weights.url).name)

    backbone = create_backbone("tv:resnet18")
    assert backbone.weights.spec == "torchvision:ResNet18_Weights.IMAGENET1K_V1"
    assert torch.equal(backbone.model.state_dict()["conv1.weight"], state["conv1.weight"])
    assert [i.name for i in list_backbones("tv:resnet18")] == ["tv:resnet18"]
