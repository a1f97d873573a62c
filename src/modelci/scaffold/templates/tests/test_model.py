"""Model tests from modelci's pytest plugin (``modelci.testing``).

``ModelChecks`` checks the model that ``dvc repro`` produced: it loads through the safe loader
and a crafted file is refused, the gate thresholds of params.yaml hold on the test split, the
metrics file matches the model, retraining gives the same bytes, and the cases declared under
``model_tests:`` in params.yaml hold. Until the first ``dvc repro`` only the params check runs
and the others are skipped (``pytest --modelci-missing-outputs=fail`` makes that an error).

Replace a check by defining a method of the same name; turn one off with ``test_name = None``.
"""

from modelci.testing import ModelChecks


class TestModel(ModelChecks):
    """Every generic check of modelci; add this repository's own tests below."""
