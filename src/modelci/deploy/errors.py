"""The error every deploy step raises."""

from __future__ import annotations

from modelci.errors import ModelCIError


class DeployError(ModelCIError):
    """A deploy step or the smoke test failed."""
