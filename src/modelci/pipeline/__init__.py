"""The pipeline stages run by ``dvc.yaml``: pure core functions plus a thin ``run`` doing the IO."""
