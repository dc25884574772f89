"""Turning `_target_` nodes into objects, only for targets on the allow-list.

The allow-list is checked on the *string* before anything is imported, so `_target_: os.system` never runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlexp import ConfigError

ALLOWED = ("dlexp.", "torch.nn.", "torch.optim.")


def check_target(target: Any, where: str, extra: tuple[str, ...] = ()) -> str | None:
    """One sentence if `target` may not be imported, else None."""
    prefixes = ALLOWED + tuple(p if p.endswith(".") else p + "." for p in extra)
    if not isinstance(target, str) or not target:
        return f"{where}._target_ must be a dotted path such as torch.optim.SGD, not {target!r}."
    if not target.startswith(prefixes):
        return (
            f"{where}._target_={target} is not allowed: targets must come from "
            f"{', '.join(p.rstrip('.') for p in prefixes)} (add your module to allow_targets to use your own)."
        )
    return None


def locate(target: str) -> Callable:
    from hydra.utils import get_object

    return get_object(target)


def instantiate(node: DictConfig | ListConfig, where: str, allow: tuple[str, ...] = (), **kwargs) -> Any:
    """hydra.utils.instantiate after the allow-list check (the node's own target and any nested ones)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    from dlexp import DlexpError

    for path, target in find_targets(node, where):
        problem = check_target(target, path, allow)
        if problem:
            raise ConfigError(problem)
    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, DlexpError):  # our own one-sentence errors, unwrapped from Hydra's
            raise err.__cause__ from None
        if isinstance(err.__cause__, (ValueError, TypeError)):  # a constructor refused its arguments
            first = (str(err.__cause__).strip().splitlines() or [type(err.__cause__).__name__])[0]
            raise ConfigError(f"{where}: {first}") from None
        raise


def as_dict(node: DictConfig, resolve: bool = True) -> dict[str, Any]:
    """A mapping node as plain Python, its interpolations resolved or kept as written."""
    container = OmegaConf.to_container(node, resolve=resolve)
    if not isinstance(container, dict):  # only a ListConfig becomes anything else
        raise ConfigError(f"Expected a mapping, got {type(container).__name__}.")
    return {str(key): value for key, value in container.items()}


def find_targets(node: Any, where: str) -> list[tuple[str, Any]]:
    """Every (path, _target_) inside a node, the node itself included."""
    found = []
    if isinstance(node, DictConfig):
        for key in node.keys():
            value = node._get_node(key)
            if key == "_target_":
                found.append((where, as_dict(node, resolve=False).get("_target_")))
            elif isinstance(value, DictConfig):
                found += find_targets(value, f"{where}.{key!s}")
    return found
