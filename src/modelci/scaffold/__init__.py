"""`modelci init`: scaffold a model repository from a data file."""
