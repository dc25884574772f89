"""Everything that knows Hydra: finding the configs, composing them, validating them, running jobs."""
