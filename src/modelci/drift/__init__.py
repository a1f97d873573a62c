"""Drift between a reference sample (the training data) and a current one (production inputs).

``distance`` holds the pure distribution primitives (PSI, KS, chi-square per column) that the
production drift check and the pull request's data diff share.
"""
