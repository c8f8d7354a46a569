"""Turning validation problems into either an error (strict) or skipped rows (default)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from featurekit.errors import SourceValidationError
from featurekit.images.index import SourceProblem

logger = logging.getLogger(__name__)

MAX_IN_MESSAGE = 20
MAX_IN_LOG = 8


def format_problems(problems: Sequence[SourceProblem], limit: int) -> str:
    lines = [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def settle_problems(
    problems: Sequence[SourceProblem], *, where: str, n_rows: int, n_kept: int, strict: bool
) -> None:
    """Raise (strict, or nothing usable left) or log a short summary of the rows that will be skipped."""
    if problems and strict:
        raise SourceValidationError(
            f"{where}: {len(problems)} problem(s) in {n_rows} row(s) (strict=True; "
            f"pass strict=False to skip bad rows instead):\n{format_problems(problems, MAX_IN_MESSAGE)}",
            list(problems),
        )
    if n_kept == 0:
        detail = f":\n{format_problems(problems, MAX_IN_MESSAGE)}" if problems else ""
        raise SourceValidationError(
            f"{where}: no usable images ({n_rows} row(s) found, {len(problems)} with problems){detail}",
            list(problems),
        )
    if problems:
        logger.warning(
            "%s: skipped %d of %d row(s) (index.skipped lists all; strict=True raises instead):\n%s",
            where,
            len(problems),
            n_rows,
            format_problems(problems, MAX_IN_LOG),
        )
