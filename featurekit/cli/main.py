"""The `featurekit` command: parse, call the library, print. Errors become one clear line."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence

from featurekit import __version__
from featurekit.cli import (
    cache_cmd,
    demo_cmd,
    ensemble_cmd,
    evaluate_cmd,
    extract_cmd,
    fit_cmd,
    list_cmd,
    predict_cmd,
    search_cmd,
)
from featurekit.errors import FeaturekitError, Interrupted

COMMANDS = (
    extract_cmd,
    fit_cmd,
    search_cmd,
    ensemble_cmd,
    evaluate_cmd,
    predict_cmd,
    cache_cmd,
    list_cmd,
    demo_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featurekit",
        description="Frozen-backbone image features, cached once; classifier heads fitted on the cache.",
    )
    parser.add_argument("--version", action="version", version=f"featurekit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(commands)
    return parser


# Values that start with '-' but are not one negative number ("-1,-2") look like options to argparse.
_NEGATIVE_LIST = re.compile(r"^-\d+(,-?\d+)+$")


def _attach_negative_lists(argv: Sequence[str]) -> list[str]:
    """`--layers -1,-2` → `--layers=-1,-2`, so the documented spelling parses."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_LIST.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(_attach_negative_lists(argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("PIL", "matplotlib", "h5py", "urllib3", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.run(args))
    except Interrupted as exc:  # finished work is kept; the message says how to resume
        print(f"featurekit {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except FeaturekitError as exc:
        if os.environ.get("FEATUREKIT_DEBUG") == "1":
            raise
        print(f"featurekit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"featurekit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
