"""Your own code for this model repository: feature factories, your own stages.

A feature-engineering factory named in params.yaml (``train.pipeline: <<module>>.features:build``)
or a stage of your own in dvc.yaml imports from here; `uv sync` installs this package.
"""
