"""Drift between a reference sample (the training data) and a current one (production inputs).

The pure distribution primitives (PSI, KS, chi-square per column) that the production drift check
and the pull request's data diff share are in ``modelci.judge.distance``.
"""
