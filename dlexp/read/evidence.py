"""Reading a sweep as evidence: runs that differ only in `seed` form a group, each group is summarised by the mean
and spread of its completed runs, and a verdict says whether the best group's lead is larger than seed noise.

One seed cannot tell a real difference from run-to-run noise: the same configuration trained from another seed
ends somewhere else. Welch's t-test compares two groups' means without assuming equal spreads. Runs that diverged
or failed are counted in their group, never averaged: their last numbers are not results of the same kind.

Everything here reads run directories (as dlexp/read/rows.py's RunRow), nothing imports torch; scipy is imported only
when a p-value is computed.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlexp import UsageError
from dlexp.read.runs import lower_is_better, ranked

if TYPE_CHECKING:
    from dlexp.read.rows import RunRow

SIGNIFICANCE = 0.05  # a p-value below this is called a clear difference (the usual 5% convention)
VARIES_WITHIN = ("seed",)  # what runs of one group may differ in
IGNORED_TOP = ("log",)  # where and how often a run logs does not change its result
AGGREGATE_DIR = "aggregate"  # under a sweep: one TensorBoard run per group (the mean of its seeds)
# the aggregate run's extra tags: <tag>/mean, /std, /min, /max (<tag> holds the mean too, to overlay the runs' curves;
# <tag>/mean, a tag no single run has, is the line of the group's band in `dlexp board`)
STATS = ("mean", "std", "min", "max")


@dataclass(frozen=True)
class Stat:
    """Mean and spread of one number over the completed runs of a group; std is None for a single run."""

    n: int
    mean: float
    std: float | None
    min: float
    max: float


def describe(values: list[float]) -> Stat | None:
    """Sample statistics (std with n - 1, as Welch's test uses); None for no values."""
    values = [float(v) for v in values]
    if not values:
        return None
    return Stat(
        n=len(values),
        mean=statistics.fmean(values),
        std=statistics.stdev(values) if len(values) > 1 else None,
        min=min(values),
        max=max(values),
    )


def describe_all(values: list[float]) -> Stat:
    """`describe` of values that must be there (every run's value at a step they all logged)."""
    found = describe(values)
    if found is None:
        raise ValueError("No values to describe: no run logged this step.")
    return found


@dataclass
class Group:
    """Runs that share every setting except the seed (or, with --by, the values of the chosen keys)."""

    key: dict[str, str]  # the values that set this group apart: {"optimizer": "adam"}
    runs: list[RunRow] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key.items()) or "all runs"

    @property
    def completed(self) -> list[RunRow]:
        return [run for run in self.runs if run.status == "completed"]

    @property
    def others(self) -> Counter:
        """{"diverged": 1}: the runs that are counted but not averaged."""
        return Counter(run.status for run in self.runs if run.status != "completed")

    def stat(self, metric: str) -> Stat | None:
        return describe([run.metrics[metric] for run in self.completed if run.metrics.get(metric) is not None])


# --- grouping --------------------------------------------------------------------------------------------------


def value_of(row: RunRow, key: str) -> str | None:
    """A run's value for a dotted config key (optimizer.lr), a config group (optimizer) or an override (+x)."""
    for source in (row.config, row.choices, row.overrides):
        if key in source:
            return str(source[key])
    return None


def logging_knob(key: str) -> bool:
    """log.dir, +log.every: where and how often a run logs, not what it learns."""
    return key.split(".")[0].lstrip("+~") in IGNORED_TOP


def settings(row: RunRow) -> dict[str, str]:
    """Everything that decides a run's result: the composed config and the group choices, without the seed
    and the logging knobs (the overrides, for a run directory without its config.yaml)."""
    found = {**row.config, **row.choices} if row.config else dict(row.overrides)
    return {k: str(v) for k, v in found.items() if k not in VARIES_WITHIN and not logging_knob(k)}


def differs_in_seed_only(rows: list[RunRow]) -> bool:
    """Do some of these runs differ in nothing but their seed? Then the table groups them by default."""
    seen = Counter(_frozen(settings(row)) for row in rows)
    return any(n > 1 for n in seen.values())


def seed_groups(rows: list[RunRow], by: list[str] | None = None) -> list[Group]:
    """The runs as groups, in the order their first run comes: runs that differ only in seed (default), or
    runs that share the values of the `by` keys. Each group's `key` holds the values that set it apart."""
    if by:
        missing = [k for k in by if all(value_of(row, k) is None for row in rows)]
        if missing:
            raise UsageError(
                f"--by {','.join(by)}: no run has a value for {', '.join(missing)}; keys these runs "
                f"differ in: {', '.join(differing_keys(rows)) or '(none)'}."
            )
        keyed = [(tuple(value_of(row, k) or "" for k in by), row) for row in rows]
        return _gather(keyed, list(by))
    keyed = [(_frozen(settings(row)), row) for row in rows]
    groups = _gather(keyed, [])
    labels = _label_keys(groups, rows)
    for group in groups:
        group.key = {k: value_of(group.runs[0], k) or "" for k in labels}
    return groups


def _frozen(found: dict[str, str]) -> tuple:
    return tuple(sorted(found.items()))


def _gather(keyed: list[tuple[Any, RunRow]], keys: list[str]) -> list[Group]:
    groups: dict[Any, Group] = {}
    for identity, row in keyed:
        group = groups.setdefault(identity, Group(key=dict(zip(keys, identity)) if keys else {}))
        group.runs.append(row)
    return list(groups.values())


def differing_overrides(rows: list[RunRow]) -> list[str]:
    """Override keys whose value is not the same in every run, in the order the runs name them (of a single run,
    all but the logging knobs: what sets it apart from the defaults)."""
    if len(rows) == 1:
        return [k for k in rows[0].overrides if not logging_knob(k)]
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row.overrides if k not in keys]
    return [k for k in keys if len({row.overrides.get(k) for row in rows}) > 1]


def differing_keys(rows: list[RunRow]) -> list[str]:
    """Override keys whose value is not the same in every run (config keys when overrides do not tell)."""
    found = differing_overrides(rows)
    if not found:
        keys = sorted({k for row in rows for k in settings(row)} | set(VARIES_WITHIN))
        found = [k for k in keys if len({value_of(row, k) for row in rows}) > 1]
    return found


def _label_keys(groups: list[Group], rows: list[RunRow]) -> list[str]:
    """The keys that name the groups: overrides that differ between groups and never within one; config keys
    too when those overrides do not tell every group apart (runs gathered from several sweeps)."""

    def constant(key: str) -> bool:
        return all(len({value_of(run, key) for run in group.runs}) == 1 for group in groups)

    def tells_apart(keys: list[str]) -> bool:
        return len({tuple(value_of(g.runs[0], k) for k in keys) for g in groups}) == len(groups)

    keys = [k for k in differing_keys(rows) if k not in VARIES_WITHIN and constant(k) and not logging_knob(k)]
    if len(groups) > 1 and not tells_apart(keys):
        every = sorted({k for g in groups for k in settings(g.runs[0])})
        keys += [
            k for k in every if k not in keys and constant(k) and len({value_of(g.runs[0], k) for g in groups}) > 1
        ]
    return keys


# --- the verdict ------------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    metric: str
    lines: list[str]
    p: float | None = None  # Welch's two-sided p-value, when one could be computed
    clear: bool | None = None  # None: no verdict possible
    best: Group | None = None  # the best group and the runner-up, when two groups have the metric
    runner_up: Group | None = None
    difference: float | None = None  # best's mean - runner-up's, and its standard error (Welch)
    standard_error: float | None = None


def welch(a: Stat, b: Stat) -> tuple[float, float, float]:
    """(difference of means a - b, its standard error, Welch's two-sided p-value). Needs n >= 2 in both."""
    if a.std is None or b.std is None:
        raise ValueError("Welch's test needs two runs or more in each group.")
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    diff = a.mean - b.mean
    if se == 0.0:  # every run of both groups ended on the same number
        return diff, 0.0, 0.0 if diff else 1.0
    t = diff / se
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))  # Welch-Satterthwaite
    from scipy.special import stdtr  # Student's t distribution function; scipy comes with scikit-learn

    return diff, se, float(2.0 * stdtr(df, -abs(t)))


def verdict(groups: list[Group], metric: str, descending: bool = False) -> Verdict | None:
    """The best group against the runner-up on `metric`: lower loss / higher accuracy is better (for other
    metrics, the sort order decides: ascending unless `descending`). None when no group has the metric."""
    scored = [(g, s) for g in groups if (s := g.stat(metric)) is not None]
    if not scored:
        return None
    lower = lower_is_better(metric) if ranked(metric) else not descending
    rule = (
        ("lower" if lower else "higher") + " is better"
        if ranked(metric)
        else ("lowest" if lower else "highest") + " first"
    )
    head = f"verdict on {metric} ({rule}):"
    if len(scored) < 2:
        unscored = [
            f"  {g.label}: {_counted(g)}, counted but not averaged"
            for g in groups
            if g.others and all(g is not h for h, _ in scored)
        ]
        return Verdict(metric, [f"{head} none, only one group has completed runs with a value for it.", *unscored])
    scored.sort(key=lambda gs: gs[1].mean, reverse=not lower)
    (best, a), (second, b) = scored[:2]
    width = max(len(best.label), len(second.label))
    lines = [f"  best       {best.label:<{width}}  {_pm(a)}", f"  runner-up  {second.label:<{width}}  {_pm(b)}"]
    lines += [f"  {g.label}: {_counted(g)}, counted but not averaged" for g in (best, second) if g.others]
    pair: dict[str, Any] = {"best": best, "runner_up": second}  # Verdict's fields
    if a.n < 2 or b.n < 2:
        return Verdict(
            metric,
            [
                f"{head} no verdict possible: one completed run per group cannot tell a difference "
                "from seed noise; sweep seed=0,1,2,3.",
                *lines,
            ],
            **pair,
        )
    diff, se, p = welch(a, b)
    found: dict[str, Any] = {**pair, "p": p, "difference": diff, "standard_error": se}
    if se == 0.0 and diff == 0.0:
        return Verdict(
            metric,
            [f"{head} no difference: every run of both groups ends at {a.mean:.4g}.", *lines],
            clear=False,
            **found,
        )
    clear = p < SIGNIFICANCE
    test = f"difference {abs(diff):.4g} ± {se:.2g} (standard error), Welch's t-test p = {p:.2g}"
    if clear:
        return Verdict(metric, [f"{head} clear.", *lines, f"  {test} < {SIGNIFICANCE}"], clear=True, **found)
    return Verdict(
        metric,
        [
            f"{head} within noise, run more seeds.",
            *lines,
            f"  {test} >= {SIGNIFICANCE}: seeds alone often make a gap this size",
        ],
        clear=False,
        **found,
    )


def _pm(s: Stat) -> str:
    return f"{s.mean:.4g} ± {s.std:.2g} (n={s.n})" if s.std is not None else f"{s.mean:.4g} (n=1)"


def _counted(group: Group) -> str:
    return ", ".join(f"{n} {status}" for status, n in group.others.items())


# --- TensorBoard: one aggregate run per group --------------------------------------------------------------------


def aggregate_curves(curves: list[dict[str, list[tuple[int, float]]]]) -> dict[str, list[tuple[int, float]]]:
    """Runs' scalar curves -> the mean curve under each tag, and <tag>/std, /min, /max: at every step that all
    the runs logged the tag (std with two runs or more)."""
    found: dict[str, list[tuple[int, float]]] = {}
    tags = set.intersection(*(set(c) for c in curves)) if curves else set()
    for tag in sorted(tags):
        per_run = [dict(c[tag]) for c in curves]  # step -> value (a step logged twice: the last)
        steps = sorted(set.intersection(*(set(points) for points in per_run)))
        for step in steps:
            s = describe_all([points[step] for points in per_run])
            found.setdefault(tag, []).append((step, s.mean))
            for name in STATS:
                value = getattr(s, name)
                if value is not None:
                    found.setdefault(f"{tag}/{name}", []).append((step, value))
    return found


def write_aggregates(sweep_dir: Path, groups: list[Group]) -> list[Path]:
    """<sweep>/aggregate/<group>/: the mean of the group's completed runs under every scalar tag they logged,
    so TensorBoard overlays group means beside the single runs. Derived data: rewritten, never appended to."""
    from dlexp.observe import tensorboard

    written = []
    for group in groups:
        if not group.completed:
            continue
        curves = aggregate_curves([tensorboard.read_scalars(run.path) for run in group.completed])
        if not curves:
            continue
        target = Path(sweep_dir) / AGGREGATE_DIR / _dirname(group.label if group.key else "all")
        for old in target.glob("events.out.tfevents.*"):
            old.unlink()
        written.append(tensorboard.write_scalars(target, curves))
    return written


def _dirname(label: str) -> str:
    return re.sub(r"[^\w.=,+-]+", "_", label.replace(", ", ","))
