"""A stack of jobs says how it is doing while it trains (dlexp/observe/stack_progress.py), through the real CLI.

Not a terminal here: plain lines, one every PLAIN_SECS (set to 0 so that a short stack prints one a step), each
with the epoch, how many jobs run, diverged and finished, the best and median step loss; a job that diverges is
named at once, before the stack trains on; the last line counts every job.
"""

from __future__ import annotations

import re

from dlexp.observe import stack_progress

# two seeds of a learning rate that trains and two of one that diverges at step 2: one stack of four
STACK = [
    "hydra/launcher=vectorized",
    "data=xor",
    "model=mlp",
    "trainer.epochs=30",
    "optimizer.lr=0.5,1e20",
    "seed=0,1",
]
LINE = re.compile(
    r"^stack of 4: epoch ([\d,]+)/30  (\d+) running, (\d+) diverged, (\d+) finished"
    r"(?:  loss best (\S+) median (\S+))?(?:  \S+ left)?$"
)


def test_a_stack_prints_its_progress_and_names_each_job_that_diverges(cli, monkeypatch):
    monkeypatch.setattr(stack_progress, "PLAIN_SECS", 0.0)
    result = cli("train", "-m", *STACK, "hydra.sweep.dir=sweep")
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]  # diverged runs: exit code 3
    lines = result.stdout.splitlines()
    shown = [(k, line) for k, line in enumerate(lines) if line.startswith("stack of")]
    found = [(k, m) for k, line in shown if (m := LINE.match(line)) is not None]
    assert shown and len(found) == len(shown), [line for _, line in shown if not LINE.match(line)]
    rows = [(k, [int(m.group(i).replace(",", "")) for i in range(1, 5)], m) for k, m in found]
    epochs = [r[0] for _, r, _ in rows]
    assert epochs == sorted(epochs) and epochs[-1] == 30
    assert len(rows) >= 30  # one line a step, and the last
    assert rows[0][1][1:] == [4, 0, 0]  # the first step: every job runs
    assert rows[-1][1][1:] == [0, 2, 2]  # the end: two diverged, two finished
    assert all(running + diverged + finished == 4 for _, (_, running, diverged, finished), _ in rows)
    for _, _, m in rows[:-1]:  # the step losses of the jobs still running
        assert m.group(5) is not None and float(m.group(5)) <= float(m.group(6))

    named = [
        k for k, line in enumerate(lines) if re.fullmatch(r"lr=1e\+20,seed=[01]_[23]: diverged at step 2: .+", line)
    ]
    assert len(named) == 2
    later = next(k for k, r, _ in rows if r[2] == 2)  # the first line that counts both
    assert max(named) < later  # named as they left the stack, before the stack's next line
    assert max(named) < next(k for k, line in enumerate(lines) if line.startswith("completed"))


def test_no_progress_asked_prints_no_stack_line(cli):
    result = cli("train", "-m", *STACK, "log.progress=none", "hydra.sweep.dir=sweep")
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert not any(line.startswith("stack of") for line in result.stdout.splitlines())


def test_time_left_reads_as_a_clock():
    assert [stack_progress.clock_text(s) for s in (7, 59.6, 750, 3723)] == ["0:07", "1:00", "12:30", "1:02:03"]
