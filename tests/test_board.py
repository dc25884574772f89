"""`dlexp board`: a real TensorBoard server on a free localhost port, asked over HTTP what it serves."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from rich.console import Console

from dlexp.errors import DlexpError
from dlexp.observe import board

JOBS = {"0_optimizer=sgd": ["optimizer=sgd"], "1_optimizer=adam": ["optimizer=adam"]}
COMMON = ["trainer.epochs=2", "model.hidden=[16]", "log.progress=none"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A finished two-job sweep laid out as `dlexp train -m optimizer=sgd,adam` lays it out, made by the recipe."""
    from dlexp import train
    from dlexp.config import compose as composer

    root = tmp_path_factory.mktemp("multirun") / "2026-01-01_00-00-00_abcdef"
    for name, overrides in JOBS.items():
        full = composer.load([*overrides, *COMMON])
        job = train.Job(run_dir=root / name, overrides=[*overrides, *COMMON], choices=composer.choices(full))
        status, _ = train.run(composer.without_hydra(full), job, Console(file=io.StringIO()))
        assert status == "completed"
    return root


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


def both(answer):
    return answer if len(answer) == len(JOBS) else None


def test_board_serves_both_runs_with_scalars_histograms_and_hparams(sweep):
    process = subprocess.Popen([sys.executable, "-m", "dlexp", "board", str(sweep), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, f"no localhost URL in {line!r} (stderr: {process.stderr.read() if process.poll() else ''})"
        url = match.group(0)
        runs = wait_for(lambda: both(get(url + "data/runs")))
        assert sorted(runs) == sorted(JOBS)

        scalars = wait_for(lambda: both(get(url + "data/plugin/scalars/tags")))
        histograms = get(url + "data/plugin/histograms/tags")
        for run in JOBS:
            assert {"val/loss", "val/acc", "train/loss", "dead/1_relu", "update_ratio/1_linear"} <= set(scalars[run])
            assert {"activations/1_relu", "preactivations/1_linear", "weights/1_linear", "biases/1_linear",
                    "grads/1_linear"} <= set(histograms[run])
        series = get(url + "data/plugin/histograms/histograms?" +
                     urllib.parse.urlencode({"run": "0_optimizer=sgd", "tag": "activations/1_relu"}))
        assert len(series) == 3                                      # steps 0 and the ends of epochs 1 and 2

        experiment = get(url + "data/plugin/hparams/experiment", {"experimentName": ""})
        infos = {h["name"]: h for h in experiment["hparamInfos"]}
        assert infos["optimizer"]["differs"] and sorted(infos["optimizer"]["domainDiscrete"]) == ["adam", "sgd"]
        assert not infos["model.hidden"]["differs"]
        assert {"val/loss", "best/val/loss", "hist/dead"} <= {m["name"]["tag"] for m in experiment["metricInfos"]}
        groups = get(url + "data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 100, "colParams": [],
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]})
        rows = {g["name"]: g for g in groups["sessionGroups"]}
        assert sorted(rows) == sorted(JOBS)                          # one row per job
        for name, row in rows.items():
            assert row["hparams"]["optimizer"] == name.split("=")[1]
            values = {m["name"]["tag"]: m["value"] for m in row["metricValues"]}
            status = json.loads((sweep / name / "status.json").read_text())
            assert values["val/loss"] == pytest.approx(status["metrics"]["val/loss"], rel=1e-6)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "TensorBoard stopped" in out
    assert "experimental fast data loading" not in err and "NOTE" not in err, err  # nothing that looks like a problem


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
