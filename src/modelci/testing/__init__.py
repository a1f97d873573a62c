"""modelci's pytest plugin: model checks every model repository gets without copying them.

``from modelci.testing import ModelChecks`` and subclass it in a test module; the fixtures
(``modelci_model``, ``modelci_test_frame`` ...) come from the ``modelci`` pytest entry point.
"""

from modelci.testing.checks import ModelChecks

__all__ = ["ModelChecks"]
