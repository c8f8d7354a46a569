"""Typed errors. Each also inherits the matching builtin so callers can catch either.

Messages say what was given, what is allowed and how to fix it. The CLI prints a
`FeaturekitError` as one line and exits 1 (set FEATUREKIT_DEBUG=1 for the traceback).
"""

from __future__ import annotations


class FeaturekitError(Exception):
    """Base class of every error featurekit raises on purpose."""


class UnknownNameError(FeaturekitError, KeyError):
    """A name (backbone, head, source, metric, ...) that no registry holds."""

    def __str__(self) -> str:  # KeyError would repr() the message; show it plainly
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(FeaturekitError, ValueError):
    """A registry name registered twice."""


class MissingDependencyError(FeaturekitError, ImportError):
    """An optional package is needed; the message names the `pip install` to run."""


class InvalidInputError(FeaturekitError, ValueError):
    """User data (a folder, CSV, npz, option value) that cannot be used as given."""


class SourceValidationError(InvalidInputError):
    """An image source failed validation; `problems` lists each file/row and reason."""

    def __init__(self, message: str, problems: list[object] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class PathNotFoundError(FeaturekitError, FileNotFoundError):
    """A path the user gave does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class WeightsUnavailableError(FeaturekitError, RuntimeError):
    """Pretrained weights cannot be had (no network, no file, no package)."""


class WeightsMismatchError(FeaturekitError, ValueError):
    """A checkpoint whose keys or shapes do not fit the model."""


class ProvenanceMismatchError(FeaturekitError, ValueError):
    """Features or a model made with other settings than those requested."""


class CacheFormatError(FeaturekitError, ValueError):
    """A file that is not a readable featurekit cache."""


class UnsafeModelFileError(FeaturekitError, ValueError):
    """A model file that would need untrusted code or types to load."""


class CacheLockedError(FeaturekitError, RuntimeError):
    """Another live process is writing the same cache."""


class Interrupted(FeaturekitError, RuntimeError):
    """A signal stopped a long command; its finished work is kept and the same command resumes."""

    def __init__(self, message: str, *, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ExtractionInterrupted(Interrupted):
    """SIGINT or SIGTERM stopped an extraction; committed work is kept and the same command resumes."""


class SearchInterrupted(Interrupted):
    """Ctrl-C stopped a search; every finished trial is logged and the same command resumes."""


class CacheDamagedError(FeaturekitError, ValueError):
    """A cache whose stored checksums do not match its contents (`featurekit cache repair` fixes it)."""
