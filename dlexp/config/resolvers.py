"""OmegaConf resolvers used in run-directory names."""

from __future__ import annotations

import re
import secrets

from omegaconf import OmegaConf

_MAX_SLUG = 80


def _uid() -> str:
    # Cached per config (use_cache): one id for the run dir, one per sweep, shared by all its jobs.
    return secrets.token_hex(3)


def _slug(overrides: str | None) -> str:
    """'_optimizer=adam,lr=0.1' from Hydra's override_dirname: readable, safe in a path, bounded."""
    if not overrides:
        return ""
    text = re.sub(r"[^A-Za-z0-9_.,=+\-\[\]]", "_", str(overrides))
    return "_" + (text if len(text) <= _MAX_SLUG else text[: _MAX_SLUG - 1] + "~")


def register() -> None:
    if not OmegaConf.has_resolver("dlexp.uid"):
        OmegaConf.register_new_resolver("dlexp.uid", _uid, use_cache=True)
    if not OmegaConf.has_resolver("dlexp.slug"):
        OmegaConf.register_new_resolver("dlexp.slug", _slug)
