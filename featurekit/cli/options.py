"""Option groups shared by several commands; each flag maps to one config field."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from featurekit.config import INTERPOLATIONS, RESIZE_MODES, PreprocessOverrides
from featurekit.errors import InvalidInputError
from featurekit.images import SourceOptions

if TYPE_CHECKING:
    from featurekit.extract import ExtractionSettings


def _floats3(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}")
    return (values[0], values[1], values[2])


def comma_names(text: str) -> tuple[str, ...]:
    """'a, b,c' → ('a', 'b', 'c'): the argparse type of every comma-separated list flag."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_source_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("image source")
    g.add_argument("--source", default="auto", help="auto | folder | unlabelled | csv | npz (default: auto)")
    g.add_argument("--path-column", help="CSV column with image paths (default: auto-detect)")
    g.add_argument("--label-column", help="CSV column with one label per row (default: 'label')")
    g.add_argument("--labels-column", help="CSV column with several labels per row (default: 'labels')")
    g.add_argument("--label-sep", default="|", help="separator of --labels-column (default: '|')")
    g.add_argument(
        "--class-columns", type=comma_names, help="CSV 0/1 columns, one per class (comma-separated)"
    )
    g.add_argument("--split-column", default="split", help="CSV column with split names (default: 'split')")
    g.add_argument("--group-column", default="group", help="CSV column with group ids (default: 'group')")
    g.add_argument(
        "--box-columns",
        type=comma_names,
        default=("x1", "y1", "x2", "y2"),
        help="CSV box columns x1,y1,x2,y2 (default: x1,y1,x2,y2)",
    )
    g.add_argument("--image-root", help="folder that CSV paths are relative to (default: the CSV's folder)")
    g.add_argument("--npz-images-key", default="images", help="npz array of images (default: 'images')")
    g.add_argument("--npz-label-key", help="npz array of labels")
    g.add_argument("--npz-group-key", help="npz array of groups")
    g.add_argument("--npz-split-key", help="npz array of split names")
    g.add_argument("--strict", action="store_true", help="fail on any bad row instead of skipping it")


def source_options(args: argparse.Namespace) -> SourceOptions:
    return SourceOptions(
        source=args.source,
        path_column=args.path_column,
        label_column=args.label_column,
        labels_column=args.labels_column,
        label_sep=args.label_sep,
        class_columns=args.class_columns,
        split_column=args.split_column,
        group_column=args.group_column,
        box_columns=tuple(args.box_columns),
        image_root=args.image_root,
        npz_images_key=args.npz_images_key,
        npz_label_key=args.npz_label_key,
        npz_group_key=args.npz_group_key,
        npz_split_key=args.npz_split_key,
        strict=args.strict,
    )


def add_preprocess_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("preprocessing (default: the backbone's own data config)")
    g.add_argument(
        "--img-size",
        help="input size in pixels; several, e.g. 224,288, embed every image at each size, stored side "
        "by side as blocks 224px, 288px (keyed)",
    )
    g.add_argument(
        "--resize-mode", choices=RESIZE_MODES, help="crop (resize + centre crop) | squash | border"
    )
    g.add_argument("--crop-pct", type=float, help="fraction kept by the centre crop (1.0 = no crop)")
    g.add_argument("--interpolation", choices=INTERPOLATIONS)
    g.add_argument("--mean", type=_floats3, help="normalisation mean, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", type=_floats3, help="normalisation std, e.g. 0.229,0.224,0.225")


def img_sizes(args: argparse.Namespace) -> tuple[int, ...]:
    """--img-size parsed: () when not given, else one or several checked sizes."""
    from featurekit.backbones.sizes import parse_img_sizes

    return parse_img_sizes(args.img_size) if args.img_size is not None else ()


def preprocess_overrides(args: argparse.Namespace) -> PreprocessOverrides:
    """The preprocessing flags; several --img-size values are passed on separately (`img_sizes`)."""
    sizes = img_sizes(args)
    return PreprocessOverrides(
        img_size=sizes[0] if len(sizes) == 1 else None,
        resize_mode=args.resize_mode,
        crop_pct=args.crop_pct,
        interpolation=args.interpolation,
        mean=args.mean,
        std=args.std,
    )


def add_operating_point_options(parser: argparse.ArgumentParser) -> None:
    """--threshold / --label-thresholds, shared by fit and search (the rule names are
    evaluation.operating_point's, spelled out here so that the CLI does not import scikit-learn)."""
    parser.add_argument(
        "--threshold",
        choices=("eer", "min-hter", "argmax"),
        default="eer",
        help="binary tasks: decision threshold chosen on out-of-fold training scores (default: eer)",
    )
    parser.add_argument(
        "--label-thresholds",
        choices=("f1", "0.5"),
        default="f1",
        help="multi-label tasks: per-label thresholds maximising out-of-fold F1 on the training rows, "
        "saved with the head (default), or 0.5 for every label",
    )


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    def batch_size(text: str) -> int | str:
        if text == "auto":
            return text
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number or 'auto', got {text!r}") from None

    g = parser.add_argument_group("runtime (never changes the features)")
    g.add_argument(
        "--batch-size",
        type=batch_size,
        default="auto",
        help="images per forward pass, or 'auto': the largest that fits the GPU (32 on the CPU); "
        "a pass that runs out of GPU memory is split in halves (default: auto)",
    )
    g.add_argument(
        "--workers",
        type=int,
        help="decoding processes (default: GPU, one per spare core, max 8; CPU, cores // 8)",
    )
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    g.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: on with CUDA, off on CPU; recorded in the provenance)",
    )
    g.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="torch.compile the forward pass: slower start, faster batches (default: off; recorded)",
    )
    g.add_argument(
        "--decode",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="where JPEGs are decoded and resized: gpu (nvJPEG, other files fall back to PIL) or cpu "
        "(PIL in the loader); auto = gpu on CUDA (default: auto; recorded)",
    )
    g.add_argument(
        "--cpu-decode-share",
        type=float,
        default=0.0,
        metavar="F",
        help="with GPU decoding: the share (0-1) of JPEGs the loader workers decode with PIL anyway, so "
        "CPU cores and GPU decode side by side (default: 0, all on the GPU; recorded)",
    )
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar")


def extraction_settings(args: argparse.Namespace, *, tta: str = "none") -> ExtractionSettings:
    from featurekit.extract import ExtractionSettings

    if args.batch_size != "auto" and args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be at least 1 or 'auto', got {args.batch_size}")
    return ExtractionSettings(
        batch_size=args.batch_size,
        compile=getattr(args, "compile", False),
        decode=getattr(args, "decode", "auto"),
        cpu_decode_share=getattr(args, "cpu_decode_share", 0.0),
        num_workers=args.workers,
        device=args.device,
        amp=args.amp,
        progress=args.progress,
        tta=tta,
    )
