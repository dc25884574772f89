"""Making a run: the recipe (start, fit, end), the one build, the loop, checkpoints, resume, signals, the record."""
