"""Hydra sweeper plugins of dlexp (Hydra instantiates sweepers only from the hydra_plugins namespace)."""
