"""What configs build: datasets, models, initializers, losses, optimizers, batches, and the constraints on their
parameters."""
