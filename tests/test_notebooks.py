"""The lesson notebooks (notebooks/), executed by a real Jupyter kernel, and the kernel's interrupt during a run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from conftest import run_dirs, status_of

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
pytestmark = pytest.mark.slow


def outputs(cell) -> str:
    """Everything a cell showed, as text: its streams, errors and every representation of its results."""
    found = []
    for out in cell.get("outputs", []):
        found.append(out.get("text", ""))
        found += [str(v) for v in out.get("data", {}).values()]
        found += [out.get("ename", ""), out.get("evalue", "")]
    return "\n".join(found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_lesson_notebook_runs_in_a_kernel_and_shows_its_results_inline(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    shown = "\n".join(outputs(cell) for cell in code)
    # what the notebook shows has no terminal escapes: streams, and the HTML of every result (rich's lines carry
    # an ANSI text/plain too, for consoles that show text only)
    seen = [out.get("text", "") for cell in code for out in cell.outputs]
    seen += [out.get("data", {}).get("text/html", "") for cell in code for out in cell.outputs]
    assert not [text for text in seen if "\x1b[" in text]
    assert "verdict on val/loss" in shown
    kinds = {kind for cell in code for out in cell.outputs for kind in out.get("data", {})}
    assert {"text/html", "image/png"} <= kinds  # the tables and the figures, inline
    assert run_dirs(tmp_path / "runs")  # the runs written where the notebook runs, as dlexp train writes them


def test_the_kernels_interrupt_stops_a_run_checkpointed_and_the_next_cell_resumes_it(tmp_path):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    said: list[str] = []

    def hook(msg) -> None:
        if msg["msg_type"] == "stream":
            said.append(msg["content"]["text"])

    try:
        kc.execute_interactive("import signal, dlexp; before = signal.getsignal(signal.SIGINT)", timeout=120)
        msg_id = kc.execute('dlexp.train("experiment=xor_mlp", "trainer.epochs=100000", "log.progress=none")')
        deadline = time.monotonic() + 180
        while not any((run / "checkpoint.pt").exists() for run in run_dirs(tmp_path / "runs")):
            assert time.monotonic() < deadline, "the run never wrote a checkpoint"
            time.sleep(0.1)
        km.interrupt_kernel()
        while True:
            reply = kc.get_shell_msg(timeout=180)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "Interrupted"
        (run_dir,) = run_dirs(tmp_path / "runs")
        assert status_of(run_dir)["status"] == "interrupted"
        reply = kc.execute_interactive(
            "import json\n"
            f"r = dlexp.load({str(run_dir)!r}).resume('trainer.epochs={status_of(run_dir)['epoch'] + 100}')\n"
            "print(json.dumps([r.status, signal.getsignal(signal.SIGINT) == before]))",
            timeout=180,
            output_hook=hook,
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        assert json.loads(said[-1].strip().splitlines()[-1]) == ["completed", True]  # Ctrl-C is the kernel's again
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_kernels_interrupt_stops_a_sweep_and_its_resume_ends_as_a_sweep_never_interrupted(tmp_path):
    """The interrupt (■) during dlexp.sweep: the running job checkpoints, no new job starts, the cell raises
    Interrupted; the next cell finishes the sweep with dlexp.load(path).resume(), and every job ends on the very
    numbers of the same sweep run without a stop, in the same kernel."""
    import asyncio
    import threading

    sweep = "'experiment=xor_mlp', 'trainer.epochs=5000', 'log.epoch_every=10', 'seed=0,1', 'log.progress=none'"
    cells = [
        "import json, dlexp",
        f"dlexp.sweep({sweep}, 'hydra.sweep.dir=runs/stopped')",
        "before = sorted(r.status for r in dlexp.load('runs/stopped').runs)\n"
        "after = dlexp.load('runs/stopped').resume()\n"
        f"again = dlexp.sweep({sweep}, 'hydra.sweep.dir=runs/whole')\n"
        "print(json.dumps([before, sorted(r.status for r in after.runs),\n"
        "                  [r.metrics for r in after.runs] == [r.metrics for r in again.runs]]))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}
    )

    def interrupt_when_training() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            found = list((tmp_path / "runs" / "stopped").glob("*/metrics.csv"))
            if found and len(found[0].read_text().splitlines()) > 5:  # the first job, a few evaluated epochs in
                asyncio.run(client.km.interrupt_kernel())
                return
            time.sleep(0.05)

    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        watcher = threading.Thread(target=interrupt_when_training)
        watcher.start()
        client.execute_cell(nb.cells[1], 1)
        watcher.join()
        client.execute_cell(nb.cells[2], 2)
    (error,) = [out for out in nb.cells[1].outputs if out["output_type"] == "error"]
    assert error["ename"] == "Interrupted"
    said = [out["text"] for out in nb.cells[2].outputs if out.get("name") == "stdout"]
    assert json.loads("".join(said).strip().splitlines()[-1]) == [["interrupted"], ["completed", "completed"], True]
