"""Extraction throughput, measured in ONE run on the same JPEG files and device (issue 3).

For each backbone it measures
  (a) model-only ceiling: synthetic batches already on the device (CUDA: bf16 autocast, channels_last,
      torch.compile with --compile-mode, and the same eager as `model_only_eager`; CPU: float32,
      channels_last, BatchNorm folded into the convolutions, the malloc tuning featurekit applies);
  (b) decode ceiling: the same JPEGs decoded and resized to the input size, no model
      (CUDA: featurekit's device path: file bytes, one torchvision.io.decode_jpeg(device="cuda") call
      per batch, TensorGeometry resize/crop on the GPU; CPU: featurekit's loader as extraction runs it,
      its default workers (none below 8 cores) and then a decode thread per core);
  (c) naive baseline, written the way notebooks do it: torchvision ImageFolder + the timm eval transform
      in PIL + DataLoader + float32 model, features moved to the CPU every batch, stock malloc;
  (d) `featurekit extract` end to end (api.extract): JPEG files on disk → finished HDF5 cache, with
      --featurekit-decode (auto: GPU decode on CUDA), --featurekit-compile (default: on with CUDA) and
      --featurekit-batch-size (a number or auto); on CUDA also `featurekit_cpu_decode` (same, PIL decode)
      and, with --featurekit-hybrid-share S, `featurekit_hybrid` (GPU decode with S of the JPEGs
      decoded by PIL in the workers beside it).
      Besides the whole call it reports `featurekit_steady` (rows after the first batch over the time
      from the first batch to the last, everything per batch included) and `featurekit_startup_s`
      (index, hashing, model build, batch-size probe, compile, first batch), because a few thousand
      images cannot amortise a start-up that a real run of a million does;
and writes the results as JSON and as a Markdown table.

CPU (the development machine):

    python bench/extract_throughput.py --images DIR [--images DIR2 ...]
        --backbones resnet50,tf_efficientnet_lite0 --limit N --batch-size 64
        --json bench/results/cpu.json --markdown bench/results/cpu.md

GPU (one command, every part (a)–(d) in one run; docs/benchmarks.md "GPU: to be measured"):

    python bench/extract_throughput.py --make-photos /tmp/photos --count 10000
        --images ../shared/data/cifar10/train --limit 10000 --backbones resnet50,tf_efficientnet_lite0
        --batch-size 256 --featurekit-batch-size auto --workers 15
        --json bench/results/h100.json --markdown bench/results/h100.md

DIR is a class-per-subfolder folder of JPEGs. `--make-photos DIR --count N` first writes N JPEGs of
350×350 px cut from the real BCCD and COCO photos in ../shared/data (random crops, resized).
Random weights: speed does not depend on the weight values.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import timm
import timm.data
import torch
import torchvision
from PIL import Image

from featurekit import api
from featurekit.backbones import create_backbone, timm_transform_kwargs
from featurekit.config import PreprocessOverrides
from featurekit.extract import ExtractionSettings, job
from featurekit.extract.engine import decode_threads, default_workers, prepare_model
from featurekit.extract.host_memory import keep_freed_memory

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_photos(out: Path, count: int, size: int = 350, seed: int = 0) -> Path:
    """`count` real-photo JPEGs of size×size px in out/photos/, cut from BCCD and COCO images."""
    sources = sorted((SHARED / "bccd" / "images").glob("*.jpg")) + sorted(
        (SHARED / "coco128" / "images").glob("*/*.jpg")
    )
    if not sources:
        sys.exit(f"no source photos under {SHARED} (needs ../shared/data/bccd and coco128)")
    folder = out / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    if all((folder / f"{i:06d}.jpg").is_file() for i in range(count)):
        return out  # made by an earlier run: the same photos (each is seeded by its number)

    def make(i: int) -> None:
        rng = np.random.default_rng([seed, i])  # per photo: the same set whatever the thread order
        with Image.open(sources[i % len(sources)]) as img:
            rgb = img.convert("RGB")
            w, h = rgb.size
            side = int(rng.integers(min(w, h) // 2, min(w, h) + 1))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crop = rgb.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BILINEAR)
            crop.save(folder / f"{i:06d}.jpg", quality=90)

    # PIL releases the GIL while it decodes, resizes and encodes: one thread per core.
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(make, range(count)))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], int], device: torch.device) -> float:
    """Images per second of fn(), which returns how many images it processed."""
    _sync(device)
    started = time.perf_counter()
    count = fn()
    _sync(device)
    return count / (time.perf_counter() - started)


def model_only(
    name: str,
    *,
    img_size: int,
    batch: int,
    images: int,
    device: torch.device,
    compile_mode: str | None = "default",
) -> float:
    """Synthetic batches on the device; CUDA: bf16 + channels_last, compiled unless compile_mode is None."""
    backbone = create_backbone(name, weights="random", overrides=PreprocessOverrides(img_size=img_size))
    cuda = device.type == "cuda"
    # As extraction prepares it: channels_last, and in float32 every BatchNorm folded into its conv.
    backbone = prepare_model(backbone, device, "bfloat16" if cuda else "float32")
    forward = backbone.embed
    if cuda and compile_mode is not None:
        options = {} if compile_mode == "default" else {"mode": compile_mode}
        forward = torch.compile(backbone.embed, dynamic=False, **options)
    x = torch.randn(batch, 3, img_size, img_size, device=device).contiguous(memory_format=torch.channels_last)
    steps = max(1, images // batch)

    def run(n: int) -> int:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            for _ in range(n):
                forward(x)
        return n * batch

    run(3)  # warm-up: compilation, cuDNN autotuning, allocator
    return _timed(lambda: run(steps), device)


def decode_only(
    files: list[Path], *, name: str, img_size: int, batch: int, workers: int, device: torch.device
) -> float:
    if device.type == "cuda":
        # featurekit's device path without the model: bytes read, one nvJPEG call per batch,
        # TensorGeometry (the PIL path's resize/crop, on the GPU).
        from torchvision.io import ImageReadMode, decode_jpeg

        from featurekit.extract.transforms import TensorGeometry

        pre = create_backbone(
            name, weights="random", overrides=PreprocessOverrides(img_size=img_size)
        ).preprocess
        geometry = TensorGeometry(pre)  # the backbone's own geometry (bilinear or bicubic)

        def run() -> int:
            for start in range(0, len(files), batch):
                data = [
                    torch.frombuffer(bytearray(f.read_bytes()), dtype=torch.uint8)
                    for f in files[start : start + batch]
                ]
                geometry(list(decode_jpeg(data, device=device, mode=ImageReadMode.RGB)))
            return len(files)

        run()
        return _timed(run, device)

    from featurekit.extract.dataset import IndexDataset, collate_samples
    from featurekit.extract.transforms import geometry_transform
    from featurekit.images import SourceOptions, load_image_index

    pre = create_backbone(name, weights="random", overrides=PreprocessOverrides(img_size=img_size)).preprocess
    index = load_image_index(files[0].parents[1], SourceOptions())
    # featurekit's CPU loader as the engine builds it: with no worker process, a thread per core.
    dataset = IndexDataset(
        index,
        rows=range(len(index)),
        transform=geometry_transform(pre),
        threads=decode_threads(workers),
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, num_workers=workers, collate_fn=collate_samples
    )
    try:
        return _timed(lambda: sum(int(b.rows.numel()) for b in loader), device)
    finally:
        dataset.close()


def naive(root: Path, *, name: str, img_size: int, batch: int, workers: int, device: torch.device) -> float:
    backbone = create_backbone(name, weights="random", overrides=PreprocessOverrides(img_size=img_size))
    transform = timm.data.create_transform(**timm_transform_kwargs(backbone.preprocess), is_training=False)
    dataset = torchvision.datasets.ImageFolder(str(root), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, num_workers=workers, pin_memory=device.type == "cuda"
    )
    backbone.model.to(device)

    def run() -> int:
        done = 0
        with torch.no_grad():
            for images, _ in loader:
                feats = backbone.embed(images.to(device))
                feats.cpu().numpy()
                done += len(images)
        return done

    return _timed(run, device)


@dataclass
class EndToEnd:
    """One `api.extract` run: end to end, and the steady state once the first batch is out."""

    images_per_s: float  # rows / wall time of the whole call (index, hashing, model, compile, cache)
    steady_images_per_s: float | None  # rows after the first batch / time from first to last batch
    startup_s: float  # from the call to the first batch's features (model build, probe, compile)


def featurekit_end_to_end(
    root: Path,
    *,
    name: str,
    img_size: int,
    batch: int | str,
    workers: int | None,
    device: torch.device,
    decode: str = "auto",
    compile: bool = False,
    compile_mode: str = "default",
    cpu_decode_share: float = 0.0,
) -> EndToEnd:
    """`api.extract` end to end. The steady state is timed between the batches the extraction job
    receives (decode, transfer, forward, features back, journal writes all included); it leaves out
    the one-off start-up, which a 5,000-image run cannot amortise the way a real one does (a
    `torch.compile` alone takes tens of seconds)."""
    stamps: list[tuple[float, int]] = []
    original = job.iter_feature_chunks

    def timed_chunks(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for chunk in original(*args, **kwargs):
            stamps.append((time.perf_counter(), len(chunk.rows) + len(chunk.failures)))
            yield chunk

    with tempfile.TemporaryDirectory() as tmp:
        settings = ExtractionSettings(
            batch_size=batch,
            num_workers=workers,
            device=str(device),
            progress=False,
            decode=decode,
            compile=compile,
            compile_mode=compile_mode,
            cpu_decode_share=cpu_decode_share,
        )
        job.iter_feature_chunks = timed_chunks
        try:
            started = time.perf_counter()
            report = api.extract(
                root,
                backbone=name,
                weights="random",
                out=Path(tmp) / "bench.h5",
                preprocess=PreprocessOverrides(img_size=img_size),
                settings=settings,
            )
            finished = time.perf_counter()
        finally:
            job.iter_feature_chunks = original
    steady = None
    if len(stamps) >= 3:  # at least two intervals after the first batch
        steady = sum(n for _, n in stamps[1:]) / (stamps[-1][0] - stamps[0][0])
    return EndToEnd(
        images_per_s=report.rows / (finished - started),
        steady_images_per_s=steady,
        startup_s=(stamps[0][0] - started) if stamps else finished - started,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, action="append", default=[], help="class-per-subfolder JPEG folder")
    p.add_argument("--make-photos", type=Path, help="write --count 350 px real-photo JPEGs here first")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--backbones", default="resnet50,tf_efficientnet_lite0")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, help="use the first N images of each folder")
    p.add_argument("--workers", type=int, default=max(1, min(16, (os.cpu_count() or 2) - 1)))
    p.add_argument("--featurekit-workers", type=int, help="default: featurekit's own choice")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--featurekit-batch-size", help="featurekit's --batch-size: a number or auto (default: --batch-size)"
    )
    p.add_argument("--featurekit-decode", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument(
        "--featurekit-hybrid-share",
        type=float,
        default=0.0,
        help="CUDA: also run featurekit with --cpu-decode-share S as the `featurekit_hybrid` column "
        "(CPU workers and GPU decoding side by side)",
    )
    p.add_argument(
        "--featurekit-cpu-decode-share",
        type=float,
        default=0.0,
        help="featurekit's --cpu-decode-share for the `featurekit` column (GPU decode: that share of "
        "the JPEGs decoded by PIL in the loader workers beside the GPU)",
    )
    p.add_argument(
        "--featurekit-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile in featurekit's run (default: on with CUDA, off on the CPU)",
    )
    p.add_argument(
        "--compile-mode",
        default="default",
        choices=("default", "max-autotune-no-cudagraphs"),
        help="torch.compile mode of the CUDA model-only ceiling and of featurekit's --compile",
    )
    p.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to skip: model,model_eager,decode,naive,featurekit,featurekit_cpu_decode,"
        "featurekit_hybrid (model_eager, featurekit_cpu_decode and featurekit_hybrid run on CUDA only)",
    )
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--markdown", type=Path, required=True)
    args = p.parse_args()
    device = torch.device(args.device)
    folders = list(args.images)
    if args.make_photos:
        folders.append(make_photos(args.make_photos, args.count))
    skip = set(filter(None, args.skip.split(",")))
    cuda = device.type == "cuda"
    fk_compile = cuda if args.featurekit_compile is None else args.featurekit_compile
    fk_batch: int | str = args.batch_size
    if args.featurekit_batch_size:
        text = args.featurekit_batch_size
        fk_batch = text if text == "auto" else int(text)
    env = _environment(device)
    results: list[dict[str, Any]] = []
    for folder in folders:
        with tempfile.TemporaryDirectory() as tmp:
            root = _limited(folder, args.limit, Path(tmp))
            files = sorted(root.glob("*/*.jpg"))
            with Image.open(files[0]) as first:
                src_size = f"{first.width}×{first.height}"
            for name in args.backbones.split(","):
                common = {"name": name, "img_size": args.img_size, "batch": args.batch_size, "device": device}
                row: dict[str, Any] = {
                    "images": str(folder),
                    "n_images": len(files),
                    "source_px": src_size,
                    "backbone": name,
                    "img_size": args.img_size,
                    "batch_size": args.batch_size,
                    "workers": args.workers,
                    "featurekit_settings": {
                        "batch_size": fk_batch,
                        "decode": args.featurekit_decode,
                        "cpu_decode_share": args.featurekit_cpu_decode_share,
                        "compile": fk_compile,
                        "compile_mode": args.compile_mode,
                        "workers": args.featurekit_workers,
                    },
                }
                # The naive baseline runs in a fresh interpreter: stock malloc, nothing featurekit set up.
                if "naive" not in skip:
                    spawn = multiprocessing.get_context("spawn")
                    with ProcessPoolExecutor(1, mp_context=spawn) as pool:  # not daemonic: may fork workers
                        row["naive"] = pool.submit(naive, root, workers=args.workers, **common).result()
                if device.type == "cpu":
                    keep_freed_memory()
                sizes = {"img_size": args.img_size, "batch": args.batch_size, "images": len(files)}
                if "model" not in skip:
                    row["model_only"] = model_only(
                        name, device=device, compile_mode=args.compile_mode, **sizes
                    )
                if cuda and "model_eager" not in skip:
                    row["model_only_eager"] = model_only(name, device=device, compile_mode=None, **sizes)
                if "decode" not in skip:
                    # CPU: featurekit's own loader (its default workers, threads in process), the
                    # decode that the serial bound should hold featurekit to; CUDA: the device path.
                    decode_workers = args.workers
                    if not cuda:
                        decode_workers = (
                            default_workers(device)
                            if args.featurekit_workers is None
                            else args.featurekit_workers
                        )
                    row["decode_only"] = decode_only(files, workers=decode_workers, **common)
                fk = {
                    **common,
                    "batch": fk_batch,
                    "workers": args.featurekit_workers,
                    "compile": fk_compile,
                    "compile_mode": args.compile_mode,
                }
                if "featurekit" not in skip:
                    run = featurekit_end_to_end(
                        root,
                        decode=args.featurekit_decode,
                        cpu_decode_share=args.featurekit_cpu_decode_share,
                        **fk,
                    )
                    _record(row, "featurekit", run)
                if cuda and "featurekit_cpu_decode" not in skip:
                    _record(row, "featurekit_cpu_decode", featurekit_end_to_end(root, decode="cpu", **fk))
                if cuda and args.featurekit_hybrid_share > 0 and "featurekit_hybrid" not in skip:
                    run = featurekit_end_to_end(
                        root, decode="auto", cpu_decode_share=args.featurekit_hybrid_share, **fk
                    )
                    _record(row, "featurekit_hybrid", run)
                _derive(row)
                print(json.dumps(row), flush=True)
                results.append(row)
                _write(args.json, args.markdown, env, results)  # a run cut short keeps its rows
    print(_markdown(env, results))


def _write(json_path: Path, markdown_path: Path, env: dict[str, str], results: list[dict[str, Any]]) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"environment": env, "results": results}, indent=2))
    markdown_path.write_text(_markdown(env, results))


def _environment(device: torch.device) -> dict[str, str]:
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(sys.argv),
    }


def _limited(folder: Path, limit: int | None, tmp: Path) -> Path:
    """The folder itself, or a copy of its first `limit` JPEGs with the same class layout."""
    if limit is None:
        return folder
    for i, f in enumerate(sorted(folder.glob("*/*.jpg"))[:limit]):
        (tmp / f.parent.name).mkdir(exist_ok=True)
        shutil.copyfile(f, tmp / f.parent.name / f"{i:06d}{f.suffix}")
    return tmp


def _record(row: dict[str, Any], name: str, run: EndToEnd) -> None:
    row[name] = run.images_per_s
    row[f"{name}_startup_s"] = run.startup_s
    if run.steady_images_per_s is not None:
        row[f"{name}_steady"] = run.steady_images_per_s


def _derive(row: dict[str, Any]) -> None:
    if "featurekit" in row and "naive" in row:
        row["featurekit_over_naive"] = row["featurekit"] / row["naive"]
    if "featurekit" in row and "model_only" in row:
        row["featurekit_over_model"] = row["featurekit"] / row["model_only"]
    if "featurekit_steady" in row and "model_only" in row:
        row["steady_over_model"] = row["featurekit_steady"] / row["model_only"]
    if "model_only" in row and "decode_only" in row:
        # Decode and model share one device: the throughput if they ran one after the other.
        row["serial_bound"] = 1 / (1 / row["model_only"] + 1 / row["decode_only"])
        if "featurekit" in row:
            row["featurekit_over_serial_bound"] = row["featurekit"] / row["serial_bound"]
        if "featurekit_steady" in row:
            row["steady_over_serial_bound"] = row["featurekit_steady"] / row["serial_bound"]
        if "featurekit_hybrid_steady" in row:
            row["hybrid_steady_over_serial_bound"] = row["featurekit_hybrid_steady"] / row["serial_bound"]


def _markdown(env: dict[str, str], results: list[dict[str, Any]]) -> str:
    present = {key for r in results for key in r}
    cols = [
        "model_only",
        "model_only_eager",
        "decode_only",
        "naive",
        "featurekit",
        "featurekit_startup_s",
        "featurekit_steady",
        "featurekit_cpu_decode",
        "featurekit_cpu_decode_steady",
        "featurekit_hybrid",
        "featurekit_hybrid_steady",
        "featurekit_over_model",
        "featurekit_over_naive",
        "featurekit_over_serial_bound",
        "steady_over_model",
        "steady_over_serial_bound",
        "hybrid_steady_over_serial_bound",
    ]
    cols = [c for c in cols if c in present]
    head = ["images", "backbone", "px in → model", *cols]
    lines = [
        f"Device: {env['device']}; Python {env['python']}, torch {env['torch']}, "
        f"torchvision {env['torchvision']}, timm {env['timm']}; {env['date']}.",
        f"Command: `{env['command']}`",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for r in results:
        cells = [
            f"{r['n_images']} ({Path(r['images']).name})",
            r["backbone"],
            f"{r['source_px']} → {r['img_size']}, batch {r['batch_size']}",
        ]
        for c in cols:
            v = r.get(c)
            if v is None:
                cells.append("–")
            elif "over" in c:
                cells.append(f"{v:.2f}×")
            elif c.endswith("_s"):
                cells.append(f"{v:.1f} s")
            else:
                cells.append(f"{v:,.0f} img/s")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
