"""Shared by the release stubs (docker, kubectl, gh): record one call via stubtool.record."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, os.environ.get("MODELCI_STUBS", str(Path(__file__).resolve().parents[1])))
from stubtool import ROOT, record

__all__ = ["ROOT", "record"]
