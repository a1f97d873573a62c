"""modelci: GitHub Actions CI/CD for machine-learning model repositories."""

__version__ = "0.1.0"
