"""Reading raw tables and validating them against the schema declared in ``params.yaml``."""
