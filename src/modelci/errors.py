"""User-facing errors: each carries a message that names what is wrong and where.

The CLI prints ``str(error)`` as one line and exits non-zero; ``details`` are printed below it
(data validation lists every failing check there), and the traceback only with ``--verbose``.
"""

from __future__ import annotations

from collections.abc import Sequence


class ModelCIError(Exception):
    """Base class of the errors a user can cause and fix."""

    exit_code = 1

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.details = list(details)


class ConfigError(ModelCIError):
    """``params.yaml`` (or another config file) is missing, malformed or invalid."""

    exit_code = 2


class DataError(ModelCIError):
    """Input data cannot be read or fails its declared schema."""


class ModelFileError(ModelCIError):
    """A model file is missing, unreadable, tampered with, or holds untrusted types."""


class ClusterError(ModelCIError):
    """The Dask cluster of ``compute.engine: dask`` cannot be reached, or lost the work."""


class TrackingError(ModelCIError):
    """The MLflow tracking server cannot be reached or refused a request."""
