"""Hydra launcher plugins of dlexp (Hydra finds launchers only in the hydra_plugins namespace)."""
