"""Fault trials: a short run or sweep hit by SIGINT, SIGTERM or SIGKILL at a random instant or at a named point,
then finished with `dlexp resume`, and the invariants that must hold after every trial.

    python -m tests.faults --trials 100 --seed 0     # random trials; a table of signal x launcher, and what failed

A trial starts `dlexp train` in a session of its own (a signal to its process group is a terminal's Ctrl-C: every
process of the command gets it). At a random instant the signal is sent to that group; at a named point, the
command sends it to itself: DLEXP_FAULT="POINT:SIGNAL[:N]" (dlexp/run/faults.py lists the points). Invariants:

* the exit code names what happened: 130 after SIGINT, 143 (or killed by SIGTERM) after SIGTERM, killed after
  SIGKILL; 0 only when every job had finished, and finished before the signal came (a stop is never ignored);
* no traceback on the screen; every status.json parses; no run reads `running` once its process is gone;
* after `dlexp resume` (or running the command again when it was stopped before it wrote anything): every job
  `completed`, its status.json metrics and metrics.csv equal to the same job uninterrupted (exactly for runs
  alone; to float32 rounding across a stack, tests/tolerance.py), jobs finished before the resume untouched, the
  sweep's summary written and equal to the uninterrupted sweep's.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # tests/tolerance.py, also under `python -m tests.faults`

from tolerance import close  # noqa: E402

from dlexp.observe.tensorboard import COLUMNS_SUFFIX  # noqa: E402
from dlexp.read import runs  # noqa: E402

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
# What the exit code of a command stopped by each signal may be (negative: killed by that signal, which a shell
# reports as 128 + the signal: 130, 143, 137).
EXITS = {"SIGINT": {130, -signal.SIGINT}, "SIGTERM": {143, -signal.SIGTERM}, "SIGKILL": {-signal.SIGKILL}}
QUICK = ["data=digits", "trainer.epochs=2", "log.progress=none"]
SWEEP = [*QUICK, "seed=1,2,3"]  # three jobs, one group of seeds (its aggregate and verdict)
KINDS = {
    "single": [*QUICK, "hydra.run.dir=cut"],
    "basic": ["-m", *SWEEP, "hydra.sweep.dir=cut"],
    "joblib": ["-m", *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=cut"],
    "vectorized": ["-m", *SWEEP, "hydra/launcher=vectorized", "hydra.sweep.dir=cut"],
}
STACKED = ("vectorized",)  # compared to float32 rounding, not bit for bit
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
ENV.pop("DLEXP_FAULT", None)


def dlexp(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dlexp", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        timeout=timeout,
    )


DURATION: dict[str, float] = {}  # seconds the uninterrupted command of each kind took here, start-up included


def reference(kind: str, root: Path, timed: bool = True) -> Path:
    """The uninterrupted run or sweep of `kind`, made once under `root` and, when a random instant will fall within
    its time, timed after a warm-up run (the first run of a kind fills the caches)."""
    where = root / f"reference-{kind}"
    if not (where / "cut").exists():
        (where / "warm-up").mkdir(parents=True, exist_ok=True)
        if timed:
            dlexp("train", *KINDS[kind], cwd=where / "warm-up")
        start = time.perf_counter()
        done = dlexp("train", *KINDS[kind], cwd=where)
        DURATION[kind] = time.perf_counter() - start
        assert done.returncode == 0, done.stdout + done.stderr
    return where / "cut"


def jobs_of(target: Path) -> dict[int, Path]:
    """Job number (0 for a run alone) -> its directory."""
    found = {}
    for path in runs.find_runs(target) if target.exists() else []:
        number = runs.job_number(path)
        found[0 if number is None else number] = path
    return found


def files_of(root: Path) -> dict[str, tuple[str, int]]:
    """A job's files (content, time); the sweep's HParams columns, which the summary writes beside the events of
    the job that finished last, are the sweep's, not the job's."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != runs.LOCK and not p.name.endswith(COLUMNS_SUFFIX)
    }


def csv_rows(path: Path, skip: tuple[str, ...] = ("time", "wall_time")) -> list[dict[str, str]]:
    """A CSV's rows without its columns of seconds (which no two runs share)."""
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: v for k, v in row.items() if not k.startswith(skip)} for row in csv.DictReader(f)]


def same_numbers(ours: dict, theirs: dict, exact: bool) -> bool:
    if ours.keys() != theirs.keys():
        return False
    for key, a in theirs.items():
        b = ours[key]
        if a == b:
            continue
        try:
            x, y = float(a), float(b)
        except (TypeError, ValueError):
            return False
        if exact or not (close(x, y, rtol=1e-4, atol=1e-3) or (math.isnan(x) and math.isnan(y))):
            return False
    return True


@dataclass
class Trial:
    kind: str  # single / basic / joblib / vectorized
    signal: str  # SIGINT / SIGTERM / SIGKILL
    instant: float | None = None  # a random instant, as a fraction of the uninterrupted command's time
    point: str | None = None  # or a named point: "job_start", "epoch_end:3" (the 3rd time it is reached)
    delay: float | None = None  # the instant in seconds after the start
    code: int | None = None  # the stopped command's exit code
    sent: bool = True  # did the signal go out before the command ended by itself?
    sent_at: float | None = None  # when (time.time()), for a random instant
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        at = f"at {self.point}" if self.point else f"at {self.instant:.3f} of its time ({self.delay or 0:.2f}s)"
        return f"{self.kind} {self.signal} {at}"


def run_trial(trial: Trial, root: Path, refs: Path) -> Trial:
    """Stop, check, resume, check; the problems found go to `trial.problems`."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    ref = reference(trial.kind, refs, timed=trial.instant is not None)
    if trial.instant is not None:
        trial.delay = trial.instant * DURATION.get(trial.kind, 5.0)
    env = dict(ENV)
    if trial.point:
        where, _, nth = trial.point.partition(":")
        env["DLEXP_FAULT"] = f"{where}:{trial.signal}" + (f":{nth}" if nth else "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlexp", "train", *KINDS[trial.kind]],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=as_from_a_terminal,
    )
    if trial.delay is not None:
        try:
            proc.wait(timeout=trial.delay)
            trial.sent = False
        except subprocess.TimeoutExpired:
            trial.sent_at = time.time()
            os.killpg(proc.pid, SIGNALS[trial.signal])
    out, err = _output(proc, trial)
    trial.code = proc.returncode
    _wait_for_group(proc.pid)
    check_stopped(trial, root / "cut", ref, out + err)
    finished_before = {n: files_of(p) for n, p in jobs_of(root / "cut").items() if _status(p) in runs.FINISHED}
    if trial.code == 0:
        return trial
    target = root / "cut"
    if (target / runs.STATUS).is_file() or (target / runs.MULTIRUN).is_file():
        again = dlexp("resume", "cut", cwd=root)
    else:  # stopped before it wrote anything a resume could go by: the command is run again
        again = dlexp("train", *KINDS[trial.kind], cwd=root)
    if again.returncode != 0:
        trial.problems.append(f"the resume exited {again.returncode}: {(again.stdout + again.stderr)[-600:]}")
    if "Traceback" in again.stdout + again.stderr:
        trial.problems.append(f"a traceback in the resume: {again.stderr[-600:]}")
    check_finished(trial, target, ref, finished_before)
    return trial


def _output(proc: subprocess.Popen, trial: Trial, limit: float = 600, outlived: float = 30) -> tuple[str, str]:
    """The stopped command's output, once it has ended and every process of it has let go of its output; one
    that still holds it `outlived` seconds after the command ended is a problem (and is killed)."""
    deadline, ended = time.time() + limit, None
    while True:
        try:
            return proc.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            if proc.poll() is None:
                if time.time() > deadline:
                    raise
                continue
            ended = ended or time.time()
            if time.time() - ended > outlived:
                os.killpg(proc.pid, signal.SIGKILL)
                trial.problems.append(f"a process of the command still held its output {outlived:g} s after it ended")
                return proc.communicate()


def as_from_a_terminal() -> None:
    """In the command's process before it starts: SIGINT and SIGTERM as a command typed at a terminal has them. A
    process started in the background by a shell without job control (`python -m tests.faults &`, a CI step)
    inherits SIGINT ignored, and a Ctrl-C that arrived before dlexp installs its own handlers would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wait_for_group(pgid: int, timeout: float = 30) -> None:
    """Until no process of the stopped command's group is left (joblib's workers end after their parent)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _finished_at(path: Path) -> float:
    """When a run finished (status.json's `finished`, whole seconds) as time.time() counts."""
    from datetime import datetime

    return datetime.fromisoformat(runs.read_status(path)["finished"]).timestamp()


def _status(path: Path) -> str:
    return runs.read_status(path).get("status", "?")


def check_stopped(trial: Trial, target: Path, ref: Path, screen: str) -> None:
    """The invariants of a command just stopped (or ended by itself before the signal)."""
    problems = trial.problems
    if "Traceback" in screen:
        problems.append(f"a traceback on the screen: {screen[-800:]}")
    for status in target.rglob(runs.STATUS) if target.exists() else []:
        try:
            json.loads(status.read_text())
        except ValueError:
            problems.append(f"{status} does not parse")
    jobs = jobs_of(target)
    for number, path in jobs.items():
        if _status(path) == "running":
            problems.append(f"job {number} reads running, its process gone")
    complete = len(jobs) == len(jobs_of(ref)) and all(_status(p) == "completed" for p in jobs.values())
    if trial.code == 0:
        if not complete or (target / "STOP").exists():
            problems.append("exit code 0, but not every job finished")
        elif trial.sent_at is not None and trial.signal != "SIGKILL":  # finished: but before the stop came?
            last = max(_finished_at(p) for p in jobs.values())
            if last >= trial.sent_at + 1:  # status.json's clock has whole seconds
                problems.append(f"exit code 0: a job finished {last - trial.sent_at:.0f}s after the {trial.signal}")
    elif trial.code not in EXITS[trial.signal]:
        problems.append(f"exit code {trial.code} after {trial.signal}: {screen[-800:]}")
    elif not trial.sent:
        problems.append(f"exit code {trial.code}, but the command had ended before the signal")


def check_finished(trial: Trial, target: Path, ref: Path, finished_before: dict[int, dict]) -> None:
    """The invariants after the resume: every job completed, equal to the same job uninterrupted."""
    problems = trial.problems
    exact = trial.kind not in STACKED
    ours, theirs = jobs_of(target), jobs_of(ref)
    if ours.keys() != theirs.keys():
        problems.append(f"jobs {sorted(ours)} after the resume, {sorted(theirs)} planned")
    for number, path in ours.items():
        status = runs.read_status(path)
        if status.get("status") != "completed":
            problems.append(f"job {number} is {status.get('status')} after the resume")
            continue
        if number not in theirs:
            continue
        alone = runs.read_status(theirs[number])
        if not same_numbers(status.get("metrics") or {}, alone.get("metrics") or {}, exact):
            problems.append(f"job {number}: metrics {status.get('metrics')} != {alone.get('metrics')}")
        rows, rows_alone = csv_rows(path / runs.METRICS), csv_rows(theirs[number] / runs.METRICS)
        if len(rows) != len(rows_alone) or not all(same_numbers(a, b, exact) for a, b in zip(rows, rows_alone)):
            problems.append(f"job {number}: metrics.csv differs from the uninterrupted job's")
        if number in finished_before and files_of(path) != finished_before[number]:
            problems.append(f"job {number} had finished, and the resume changed its files")
    if trial.kind != "single":
        summary, summary_alone = csv_rows(target / "summary.csv"), csv_rows(ref / "summary.csv")
        if not summary or not all(same_numbers(a, b, exact) for a, b in zip(summary, summary_alone)):
            problems.append("summary.csv is missing or differs from the uninterrupted sweep's")
        if (target / "STOP").exists():
            problems.append("the sweep still reads stopped after its resume")


def random_trials(count: int, seed: int, kinds: tuple[str, ...] = tuple(KINDS)) -> list[Trial]:
    """`count` trials, the kinds in turn and the signals shifted by one each round (so 2 x len(kinds) trials meet
    every kind and every signal), each at a random instant of the uninterrupted command's time."""
    rng = random.Random(seed)
    names = list(SIGNALS)
    trials = []
    for i in range(count):
        kind, sig = kinds[i % len(kinds)], names[(i + i // len(kinds)) % len(names)]
        trials.append(Trial(kind, sig, instant=round(rng.uniform(0.0, 1.0), 3)))
    return trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(KINDS), help="single,basic,joblib,vectorized")
    args = parser.parse_args(argv)
    kinds = tuple(args.kinds.split(","))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        parser.error(f"unknown kind {bad[0]}; choose among {', '.join(KINDS)}")
    counts: Counter = Counter()
    failed: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="dlexp-faults-") as tmp:
        refs = Path(tmp) / "refs"
        for i, trial in enumerate(random_trials(args.trials, args.seed, kinds)):
            run_trial(trial, Path(tmp) / "trial", refs)
            counts[trial.signal, trial.kind] += 1
            if trial.problems:
                failed[trial.signal, trial.kind] += 1
            verdict = "ok" if not trial.problems else "BAD: " + "; ".join(trial.problems)
            print(f"{i + 1:3d} {trial} -> exit {trial.code}{'' if trial.sent else ' (ended first)'}: {verdict}")
            sys.stdout.flush()
    print()
    print(f"{'signal':8} " + " ".join(f"{k:>14}" for k in kinds) + f" {'total':>10}")
    for sig in SIGNALS:
        cells = [f"{counts[sig, k]:>3} ({failed[sig, k]} bad)" for k in kinds]
        total, bad_total = sum(counts[sig, k] for k in kinds), sum(failed[sig, k] for k in kinds)
        print(f"{sig:8} " + " ".join(f"{c:>14}" for c in cells) + f" {total:>3} ({bad_total} bad)")
    print(f"{sum(counts.values())} trials, {sum(failed.values())} with an invariant broken (seed {args.seed})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
