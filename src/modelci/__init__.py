"""modelci: GitHub Actions CI/CD for machine-learning model repositories."""

from importlib.metadata import version

# One source for the version: pyproject.toml, read from the installed distribution's metadata.
__version__ = version("modelci")
