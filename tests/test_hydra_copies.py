"""dlexp keeps two copies of Hydra logic that Hydra has no public API for (both live in `hydra._internal`): the
flags `hydra.main` accepts (config/compose.py `_arguments`) and the basic sweeper's jobs in its order (`sweep_jobs`).
Replacing them by Hydra's functions would cost a sweep nothing measurable (benchmarks/hydra_copies.py), but reach
into Hydra's private modules. These tests compare each copy with Hydra's own, so they fail when Hydra changes."""

from __future__ import annotations

import argparse

import pytest

from dlexp.config import compose as composer


def flags(parser: argparse.ArgumentParser) -> dict[str, tuple]:
    """Each option string -> (how many values it takes, its value when given without one, its choices)."""
    found = {}
    for action in parser._actions:  # argparse lists a parser's arguments nowhere else
        takes = 0 if action.nargs == 0 or isinstance(action, argparse._VersionAction) else action.nargs
        alone = action.const if takes == "?" else None
        for flag in action.option_strings:
            found[flag] = (takes, alone, tuple(action.choices or ()))
    return found


def test_the_flags_dlexp_reads_are_hydra_mains_flags():
    from hydra._internal.utils import get_args_parser  # the oracle: the parser hydra.main reads sys.argv with

    ours, hydras = flags(composer._arguments()), flags(get_args_parser())
    for flag in ("--info", "-i"):  # its value is left to Hydra, which checks it
        assert hydras[flag][2] and ours[flag] == (*hydras[flag][:2], ())
        ours[flag] = hydras[flag]
    assert ours == hydras


def test_every_flag_of_hydra_main_passes_dlexps_check():
    """What Hydra accepts, `dlexp train` hands on (e.g. -h: Hydra's help of the application)."""
    for argv in (["-h"], ["--hydra-help"], ["--info", "defaults"], ["-cd", "x", "-cn", "y", "a=1"], ["-c", "job"]):
        composer.parse_command_line(argv)


@pytest.mark.parametrize(
    "overrides, params",
    [
        (["optimizer=sgd,adam", "seed=0,1,2", "trainer.epochs=3"], {}),
        (["seed=0,1", "optimizer=sgd,adam", "seed=5,6"], {}),  # a key given twice: the later wins, in place
        (["model.hidden=[8,8],[16]", "+extra=1"], {"optimizer": "sgd,adam"}),  # hydra.sweeper.params come first
        (["seed=range(3)", "optimizer.lr=choice(0.1,0.01)", "~scheduler", "++log.every=5"], {}),
        (["data=xor", "trainer.epochs=3"], {}),  # no sweep: one job
        (["model.activation='relu','tanh'", "hydra/launcher=vectorized", "seed=range(0,6,2)"], {"seed": "1,2"}),
    ],
)
def test_the_jobs_of_a_sweep_are_hydras_basic_sweeper_jobs_in_its_order(overrides, params):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # the oracle: what Hydra itself launches
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()] + overrides)
    (hydras,) = BasicSweeper.split_arguments(parsed, None)
    assert composer.sweep_jobs(overrides, params) == hydras
