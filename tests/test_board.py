"""`dlexp board`: a real TensorBoard server on a free localhost port, asked over its own HTTP API what a learner
sees: the run names, the page it opens on (the Custom Scalars layout), the HParams columns, a diverged run."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import dlexp_cmd, status_of
from rich.console import Console

from dlexp import DlexpError
from dlexp.read import board
from dlexp.read.view import REFRESH_SECS, View

QUIET = ["log.progress=none"]
SWEEPS = {  # name -> the sweep's overrides (each runs in a few seconds)
    "optimizers": ["data=xor", "model.hidden=[8]", "optimizer=sgd,adam", "trainer.epochs=3", "log.every=1"],
    "lr": ["experiment=learning_rate", "optimizer.lr=0.01,1.0", "trainer.epochs=30"],  # lr=1.0 diverges at step 16
    "init": ["experiment=init_study", "initializer=normal,normal_small"],  # fresh networks, no training
}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[str, Path]:
    """Three real sweeps, `dlexp train -m ...` in a subprocess each, side by side in one folder."""
    root = tmp_path_factory.mktemp("boards")
    env = {**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    for name, overrides in SWEEPS.items():
        result = subprocess.run(
            [*dlexp_cmd(), "train", "-m", *overrides, *QUIET, f"hydra.sweep.dir=runs/{name}"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert result.returncode in (0, 3), result.stderr[-2000:]  # 3: a run diverged (lr=1.0)
    return {name: root / "runs" / name for name in SWEEPS}


def get(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(check, timeout: float = 60.0):
    """Poll until check() returns something truthy: TensorBoard loads event files in the background."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"TensorBoard did not serve the runs in {timeout:.0f}s (last answer: {last!r})")


@contextlib.contextmanager
def serving(folder: Path, stop: int = signal.SIGINT, sigint_ignored: bool = False):
    """`dlexp board FOLDER --port 0` in a subprocess; yields (the server's root URL, the lines it printed first).
    Stopped with the signal `stop`; `sigint_ignored`: started as a shell starts a background job, SIGINT ignored."""
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    process = subprocess.Popen(
        [*dlexp_cmd(), "board", str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
        preexec_fn=ignore,
    )
    try:
        first = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)(#\w+)", first)
        assert match, f"no localhost URL in {first!r} (stderr: {process.stderr.read() if process.poll() else ''})"
        lines = [first, process.stdout.readline()]
        if len(list(folder.rglob("*.hparams-columns"))) > 1:
            lines.append(process.stdout.readline())
        yield match.group(1), "".join(lines)
    finally:
        process.send_signal(stop)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "TensorBoard stopped" in out
        assert "experimental fast data loading" not in err and "NOTE" not in err, err  # nothing like a problem


def experiment(url: str) -> dict:
    return get(url + "data/plugin/hparams/experiment", {"experimentName": ""})


def session_groups(url: str) -> dict[str, dict]:
    groups = get(
        url + "data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "startIndex": 0,
            "sliceSize": 100,
            "colParams": [],
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        },
    )
    return {g["name"]: g for g in groups["sessionGroups"]}


def charts(layout: dict) -> list[tuple[str, str, list[str]]]:
    """(category, chart title, tag regexes) of a Custom Scalars layout, in order."""
    return [
        (c["title"], chart["title"], chart["multiline"]["tag"])
        for c in layout["category"]
        for chart in c.get("chart", [])
    ]


def test_a_sweep_opens_on_its_curves_with_readable_names_and_an_hparams_table_that_compares(sweeps):
    sweep = sweeps["optimizers"]
    with serving(sweep) as (url, printed):
        assert f"{url}#custom_scalars" in printed and f"{url}#hparams" in printed
        runs = wait_for(lambda: get(url + "data/runs") if len(get(url + "data/runs")) == 2 else None)
        assert sorted(runs) == ["optimizer=adam_1", "optimizer=sgd_0"]  # what sets the jobs apart, first

        scalars = wait_for(lambda: get(url + "data/plugin/scalars/tags"))
        histograms = get(url + "data/plugin/histograms/tags")
        for run in runs:
            assert {"val/loss", "val/acc", "train/loss", "dead/1_relu", "update_ratio/1_linear"} <= set(scalars[run])
            assert set(histograms[run]) == {
                "activations/1_relu",
                "weights/1_linear",
                "weights/2_linear",
                "grads/1_linear",
                "grads/2_linear",
            }  # no pre-activations or biases

        # the page it opens on: loss train vs val in one chart, accuracy, learning rate, then the per-layer numbers
        layout = wait_for(lambda: get(url + "data/plugin/custom_scalars/layout"))
        assert [c["title"] for c in layout["category"]] == ["Loss, accuracy, learning rate", "Per layer"]
        found = charts(layout)
        assert [title for _, title, _ in found] == [
            "loss: train (each epoch's mean) and val",
            "accuracy: train and val",
            "learning rate",
            "loss at every logged step",
            "activations: spread (std over the probe batch)",
            "dead ReLUs (share of units that never fire)",
            "gradient norm",
            "update / weight ratio of a step",
            "activations: mean",
            "a layer's single weight or bias",
        ]
        for _, title, (regex,) in found:  # each chart draws tags the runs have
            shown = {tag for tag in scalars["optimizer=sgd_0"] if re.match(regex, tag)}
            assert shown, title
        assert {t for t in scalars["optimizer=sgd_0"] if re.match(found[0][2][0], t)} == {"train/loss", "val/loss"}
        curve = get(
            url
            + "data/plugin/custom_scalars/scalars?"
            + urllib.parse.urlencode({"run": "optimizer=sgd_0", "tag": found[0][2][0]})
        )
        assert set(curve["tag_to_events"]) == {"train/loss", "val/loss"}

        # HParams: the swept key and status first, then the key metrics; rows named like the runs
        info = experiment(url)
        assert [(h["name"], h["differs"]) for h in info["hparamInfos"]] == [("optimizer", True), ("status", True)]
        assert sorted(info["hparamInfos"][0]["domainDiscrete"]) == ["adam", "sgd"]
        assert [m["name"]["tag"] for m in info["metricInfos"]][:5] == [
            "val/loss",
            "val/acc",
            "best/val/loss",
            "best/val/acc",
            "train/loss",
        ]
        rows = session_groups(url)
        assert sorted(rows) == sorted(runs)  # one row per job
        for name, row in rows.items():
            status = status_of(sweep / name)
            assert row["hparams"]["optimizer"] == status["choices"]["optimizer"]
            assert row["hparams"]["status"] == "completed"
            assert "initializer.scheme" not in row["hparams"]  # it only repeats `initializer`
            values = {m["name"]["tag"]: m["value"] for m in row["metricValues"]}
            assert values["val/loss"] == pytest.approx(status["metrics"]["val/loss"], rel=1e-6)


def test_a_diverged_run_is_named_with_its_step_beside_the_loss_charts(sweeps):
    sweep = sweeps["lr"]
    diverged = status_of(sweep / "lr=1.0_1")
    assert (diverged["status"], diverged["diverged_at_step"]) == ("diverged", 7)
    with serving(sweep) as (url, _):
        wait_for(lambda: len(get(url + "data/runs")) == 2)
        layout = wait_for(lambda: get(url + "data/plugin/custom_scalars/layout"))
        first = [
            (title, regexes)
            for category, title, regexes in charts(layout)
            if category == "Loss, accuracy, learning rate"
        ]
        assert first[-1] == ("lr=1.0_1 diverged at step 7: log10 of its loss until then", ["^diverged/log10_loss$"])
        points = get(
            url
            + "data/plugin/scalars/scalars?"
            + urllib.parse.urlencode({"run": "lr=1.0_1", "tag": "diverged/log10_loss"})
        )
        steps, values = [p[1] for p in points], [p[2] for p in points]
        assert steps == list(range(1, 7))  # every step until the one that diverged
        losses = {
            p[1]: p[2]
            for p in get(
                url
                + "data/plugin/scalars/scalars?"
                + urllib.parse.urlencode({"run": "lr=1.0_1", "tag": "train/step_loss"})
            )
        }
        for step, value in zip(steps, values):
            if step in losses:  # the same losses, as powers of ten
                assert value == pytest.approx(math.log10(losses[step]), rel=1e-5)
        assert values[-1] - values[0] > 9  # it exploded: 10^9 times larger
        assert "diverged/log10_loss" not in get(url + "data/plugin/scalars/tags")["lr=0.01_0"]

        info = experiment(url)
        assert [h["name"] for h in info["hparamInfos"]] == ["optimizer.lr", "status"]
        assert sorted(info["hparamInfos"][1]["domainDiscrete"]) == ["completed", "diverged"]
        assert [m["name"]["tag"] for m in info["metricInfos"]][:4] == [
            "val/loss",
            "best/val/loss",
            "train/loss",
            "best/train/loss",
        ]  # regression: no accuracy
        rows = session_groups(url)
        assert {name: row["hparams"]["status"] for name, row in rows.items()} == {
            "lr=0.01_0": "completed",
            "lr=1.0_1": "diverged",
        }


def test_fresh_networks_open_on_histograms_drawn_over_the_whole_sigmoid_range(sweeps):
    with serving(sweeps["init"], stop=signal.SIGTERM) as (url, printed):  # SIGTERM stops it cleanly too
        assert f"{url}#histograms" in printed
        wait_for(lambda: len(get(url + "data/runs")) == 2)
        for run in ("init=normal_0", "init=normal_small_1"):
            series = get(
                url
                + "data/plugin/histograms/histograms?"
                + urllib.parse.urlencode({"run": run, "tag": "activations/5_sigmoid"})
            )
            ((_, step, buckets),) = series
            assert step == 0 and (buckets[0][0], buckets[-1][1]) == (0.0, 1.0) and len(buckets) == 30
        filled = [(left, right) for left, right, count in buckets if count]  # N(0, 0.01): a needle at 0.5
        assert 0.42 < filled[0][0] and filled[-1][1] < 0.58
        info = experiment(url)
        assert [h["name"] for h in info["hparamInfos"]] == ["initializer", "status"]
        assert [m["name"]["tag"] for m in info["metricInfos"]] == ["hist/saturated"]


def test_a_folder_of_sweeps_says_which_columns_hparams_shows(sweeps):
    folder = sweeps["lr"].parent
    with serving(folder, sigint_ignored=True) as (url, printed):  # Ctrl-C stops a board started with & too
        assert f"{url}#custom_scalars" in printed  # some runs there train
        assert "note: 3 sweeps under" in printed and "dlexp board" in printed
        names = wait_for(lambda: get(url + "data/runs") if len(get(url + "data/runs")) == 6 else None)
        assert {name.split("/", 1)[0] for name in names} == set(SWEEPS)
        assert len({name[:24] for name in names}) == 6  # their first 24 characters tell them apart


def test_missing_folder_is_one_sentence(tmp_path):
    with pytest.raises(DlexpError, match="does not exist"):
        board.serve(tmp_path / "runs", console=Console(file=io.StringIO()))


def test_a_taken_port_is_one_sentence(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DlexpError, match=f"port {port}.*--port 0"):
            board.start(tmp_path, port=port)


# --- `dlexp board runs/`: a day of lessons --------------------------------------------------------------------------

DAY = (  # what a learner types after a day of lessons, each in the folder holding runs/ (default names)
    ["-m", "data=xor", "model.hidden=[8]", "optimizer=sgd,adam", "seed=0,1", "trainer.epochs=3", "log.every=1"],
    ["-m", "experiment=learning_rate", "optimizer.lr=0.01,0.1", "trainer.epochs=3"],
    ["data=moons", "trainer.epochs=2"],
)


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    """runs/ after two sweeps (one of them over seeds) and a single run, named as dlexp names them."""
    root = tmp_path_factory.mktemp("day")
    for args in DAY:
        train(root, args)
    return root


def train(cwd: Path, args: list[str]) -> None:
    result = subprocess.run(
        [*dlexp_cmd(), "train", *args, *QUIET],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_day_of_runs_reads_by_what_sets_each_apart_and_opens_on_the_bands_of_its_seeds(day):
    seeds = next((day / "runs" / "multirun").glob("*_optimizer,seed"))
    lr = next((day / "runs" / "multirun").glob("*_learning_rate"))
    single = next((day / "runs").glob("*/*_data=moons,epochs=2"))
    clock = seeds.name.split("_")[1][:5]  # the sweep has no experiment: the time it started names it
    with serving(day / "runs") as (url, printed):
        assert f"{url}#custom_scalars" in printed
        expected = {
            f"{clock}/optimizer=sgd,seed=0_0": seeds / "optimizer=sgd,seed=0_0",
            f"{clock}/optimizer=sgd,seed=1_1": seeds / "optimizer=sgd,seed=1_1",
            f"{clock}/optimizer=adam,seed=0_2": seeds / "optimizer=adam,seed=0_2",
            f"{clock}/optimizer=adam,seed=1_3": seeds / "optimizer=adam,seed=1_3",
            f"(seeds) {clock}/optimizer=sgd": seeds / "aggregate" / "optimizer=sgd",
            f"(seeds) {clock}/optimizer=adam": seeds / "aggregate" / "optimizer=adam",
            "learning_rate/lr=0.01_0": lr / "lr=0.01_0",
            "learning_rate/lr=0.1_1": lr / "lr=0.1_1",
            "data=moons,epochs=2": single,
        }
        names = wait_for(lambda: get(url + "data/runs") if len(get(url + "data/runs")) == len(expected) else None)
        assert sorted(names) == sorted(expected)
        assert len({name[:30] for name in names}) == len(names)  # the first 30 characters tell them apart
        for name, folder in expected.items():  # where each run lives: on the Text page
            text = get(url + "data/plugin/text/text?" + urllib.parse.urlencode({"run": name, "tag": "folder"}))
            assert str(folder.resolve()) in text[0]["text"]

        # the root address opens the curated page: its tab comes first
        assert next(iter(get(url + "data/plugins_listing"))) == "custom_scalars"
        layout = wait_for(lambda: get(url + "data/plugin/custom_scalars/layout"))
        first = layout["category"][0]
        assert first["title"].startswith("Groups of seeds")
        assert [c["margin"]["series"] for c in first["chart"]] == [
            [{"value": f"{tag}/mean", "lower": f"{tag}/min", "upper": f"{tag}/max"}]
            for tag in ("val/loss", "train/loss")
        ]
        assert [c["title"] for c in layout["category"][1:]] == ["Loss, accuracy, learning rate", "Per layer"]
        # the band of optimizer=adam: the mean of its two seeds' val/loss, between the lower and the higher one
        finals = [
            status_of(seeds / job)["metrics"]["val/loss"]
            for job in ("optimizer=adam,seed=0_2", "optimizer=adam,seed=1_3")
        ]
        band = get(
            url
            + "data/plugin/custom_scalars/scalars?"
            + urllib.parse.urlencode(
                {"run": f"(seeds) {clock}/optimizer=adam", "tag": "(val/loss/mean)|(val/loss/min)|(val/loss/max)"}
            )
        )["tag_to_events"]
        last = {tag: events[-1][2] for tag, events in band.items()}
        assert last["val/loss/mean"] == pytest.approx(sum(finals) / 2, rel=1e-5)
        assert (last["val/loss/min"], last["val/loss/max"]) == pytest.approx((min(finals), max(finals)), rel=1e-5)
        for run in names:  # no single run has a band's tags (TensorBoard would list it as lacking some)
            tags = get(url + "data/plugin/scalars/tags").get(run, {})
            assert ("val/loss/mean" in tags) == run.startswith("(seeds)")

        # a run started after the board appears, under its own name
        train(day, ["experiment=xor_mlp", "trainer.epochs=2"])
        wait_for(lambda: "xor_mlp/epochs=2" in get(url + "data/runs"), timeout=30)
        view = Path(get(url + "data/environment")["data_location"])
    assert not view.exists()  # the board's folder of names goes with it


def fake_run(folder: Path, stamp: int, status: dict | None = None) -> Path:
    """A run directory as the view sees it: status.json and an (empty) event file created at `stamp`."""
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps(status or {"status": "completed"}))
    (folder / f"events.out.tfevents.{stamp}.host.1.0").write_bytes(b"")
    return folder


def test_names_open_with_what_sets_runs_apart_and_stay_while_runs_come_and_go(tmp_path):
    runs_dir = tmp_path / "runs"
    multirun = runs_dir / "multirun"
    for sweep, experiment, stamp in (
        ("2026-12-05_06-13-11_bc4e16_xor_mlp", "xor_mlp", 100),
        ("2026-12-05_06-20-00_cccccc_optimizer,seed", "None", 200),
        ("2026-12-05_09-00-00_dddddd_losses_classification", "losses_classification", 300),
    ):
        (multirun / sweep).mkdir(parents=True)
        (multirun / sweep / "multirun.yaml").write_text("{}")
        fake_run(
            multirun / sweep / "optimizer=adam,seed=0_0", stamp, {"sweep_job": 0, "choices": {"experiment": experiment}}
        )
    day = runs_dir / "2026-12-05"
    fake_run(day / "06-14-46_8425d4_data=moons,epochs=3", 110)
    fake_run(day / "06-15-00_111111_data=moons,epochs=3", 120)  # the same overrides again
    fake_run(day / "06-16-00_222222", 130)
    fake_run(day / "06-17-00_333333_exp=xor_mlp,lr=0.1", 140)
    for lesson, stamp, when in (("xor", "20261205-184246-12504", 150), ("xor", "20261205-184250-12600", 160)):
        sweep = runs_dir / "lessons" / lesson / stamp  # scripts/_lesson.sh names them so
        sweep.mkdir(parents=True)
        (sweep / "multirun.yaml").write_text("{}")
        fake_run(sweep / "seed=0_0", when, {"sweep_job": 0, "choices": {"experiment": "None"}})
    view = View(runs_dir)
    try:
        view.refresh()
        names = {folder.relative_to(runs_dir).as_posix(): name for folder, name in view.names.items()}
        assert names == {
            "multirun/2026-12-05_06-13-11_bc4e16_xor_mlp/optimizer=adam,seed=0_0": "xor_mlp/optimizer=adam,seed=0_0",
            "multirun/2026-12-05_06-20-00_cccccc_optimizer,seed/optimizer=adam,seed=0_0": "06-20/optimizer=adam,seed=0_0",
            "multirun/2026-12-05_09-00-00_dddddd_losses_classification/optimizer=adam,seed=0_0": (
                "losses_classi~/optimizer=adam,seed=0_0"
            ),
            "2026-12-05/06-14-46_8425d4_data=moons,epochs=3": "data=moons,epochs=3",
            "2026-12-05/06-15-00_111111_data=moons,epochs=3": "data=moons,epochs=3@06-15",
            "2026-12-05/06-16-00_222222": "defaults",
            "2026-12-05/06-17-00_333333_exp=xor_mlp,lr=0.1": "xor_mlp/lr=0.1",
            "lessons/xor/20261205-184246-12504/seed=0_0": "xor/seed=0_0",  # a lesson script's sweep: its lesson
            "lessons/xor/20261205-184250-12600/seed=0_0": "xor@18-42/seed=0_0",
        }
        for folder, name in view.names.items():  # TensorBoard's run: the board's record, then links to the run's files
            assert sorted(p.name for p in (view.path / name).iterdir()) == [
                "events.out.tfevents.0000000000.dlexp-board",
                *sorted(p.name for p in folder.glob("events.out.tfevents.*")),
            ]

        # a second sweep of the same experiment, a resumed run's new event file, a run removed
        later = multirun / "2026-12-05_10-00-00_eeeeee_xor_mlp"
        later.mkdir()
        (later / "multirun.yaml").write_text("{}")
        fake_run(later / "lr=0.1_0", 400, {"sweep_job": 0, "choices": {"experiment": "xor_mlp"}})
        moons = day / "06-14-46_8425d4_data=moons,epochs=3"
        (moons / "events.out.tfevents.500.host.2.0").write_bytes(b"")
        defaults = day / "06-16-00_222222"
        shutil.rmtree(defaults)
        before = dict(view.names)
        view.refresh()
        assert view.names[later / "lr=0.1_0"] == "xor_mlp@10-00/lr=0.1_0"
        assert {f: n for f, n in view.names.items() if f in before} == {
            f: n for f, n in before.items() if f != defaults
        }
        assert (view.path / "data=moons,epochs=3" / "events.out.tfevents.500.host.2.0").resolve() == (
            moons / "events.out.tfevents.500.host.2.0"
        )
        assert not (view.path / "defaults").exists()
    finally:
        view.close()
    assert not view.path.exists()
    # what the README says: the view catches up every 2 seconds, TensorBoard reloads every 5
    assert (REFRESH_SECS, inspect.signature(board.start).parameters["reload_interval"].default) == (2.0, 5.0)


def test_a_board_on_the_folder_that_holds_its_view_does_not_view_the_view(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the view is made under the system's temporary folder
    fake_run(tmp_path / "2026-12-05" / "06-14-46_8425d4_data=moons", 110)
    view = View(tmp_path)
    try:
        for _ in range(3):
            view.refresh()
        assert list(view.names.values()) == ["data=moons"]
    finally:
        view.close()
