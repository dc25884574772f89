"""Another CPU's rounding, on this one: with DLEXP_TEST_ROUNDING=ulp, every float32 result of a batched matrix
product (torch.bmm, torch.baddbmm: what a stack of jobs computes with) moves by one unit in the last place, up or
down by position.

A batched product and a single one (addmm: a run alone) may take different kernels, which round the last bit of a
sum differently from one CPU to another (AVX2 or AVX-512, blocking, FMA order), and no environment variable makes
one machine reproduce another's. The tests run with this folder on PYTHONPATH, so that every Python process they
start (a `dlexp` command, a lesson script's) imports this file at start-up and rounds the same way as the tests'
own process; torch is patched when something first imports it, so a process that never needs torch still does not
load it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys

SETTING = os.environ.get("DLEXP_TEST_ROUNDING", "")


def one_ulp_off(product):
    def rounded(*args, **kwargs):
        import torch

        out = product(*args, **kwargs)
        if out.dtype != torch.float32 or kwargs.get("out") is not None:
            return out
        flat = out.reshape(-1)
        up = torch.arange(flat.numel(), device=out.device) % 2 == 0
        towards = torch.full_like(flat, float("inf")).where(up, torch.full_like(flat, float("-inf")))
        return torch.nextafter(flat, towards).reshape(out.shape)

    return rounded


def patch(torch) -> None:
    if not getattr(torch.bmm, "one_ulp_off", False):
        torch.bmm, torch.baddbmm = one_ulp_off(torch.bmm), one_ulp_off(torch.baddbmm)
        torch.bmm.one_ulp_off = torch.baddbmm.one_ulp_off = True


class _PatchTorchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


if SETTING == "ulp":
    if "torch" in sys.modules:
        patch(sys.modules["torch"])
    else:
        sys.meta_path.insert(0, _PatchTorchOnImport())
elif SETTING:
    raise RuntimeError(f"DLEXP_TEST_ROUNDING={SETTING}: the one setting is 'ulp'")
