"""HTTP serving of a model: ``modelci serve`` (see README, "Serving")."""
