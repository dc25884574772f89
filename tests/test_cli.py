"""The CLI through its real entry point (`python -m dlexp`, a subprocess), as a user types it."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from conftest import run_dirs, status_of


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("train", "list", "show", "compare", "board", "validate"):
        assert command in result.stdout


def test_version_names_dlexp_and_what_it_runs_on(cli):
    from importlib import metadata

    import dlexp

    result = cli("--version")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first == f"dlexp {dlexp.__version__}" == f"dlexp {metadata.version('dlexp')}"  # one version, written once
    assert f"torch {metadata.version('torch')}" in second and f"hydra {metadata.version('hydra-core')}" in second
    assert cli("-V").stdout == result.stdout
    assert "--version" in cli("--help").stdout


@pytest.mark.parametrize(
    "command, usage",
    [
        ("compare", "dlexp compare [OPTIONS] PATHS..."),
        ("diff", "dlexp diff [OPTIONS] RUN_A RUN_B"),
        ("board", "dlexp board [OPTIONS] [PATH]"),
        ("resume", "dlexp resume [OPTIONS] RUN_DIR [OVERRIDES]..."),
        ("data download", "dlexp data download [OPTIONS] NAME"),
        ("list", "dlexp list [OPTIONS] [GROUP]"),
        ("train", "dlexp train [OPTIONS] [OVERRIDES]..."),
        ("show", "dlexp show [OPTIONS] [OVERRIDES]..."),
    ],
)
def test_usage_lines_name_the_arguments_in_capitals(cli, command, usage):
    result = cli(*command.split(), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].replace("python -m dlexp", "dlexp") == f"Usage: {usage}"


def test_train_help_points_to_list_and_show(cli):
    text = " ".join(cli("train", "--help").stdout.split())
    assert "`dlexp list` (every group and option)" in text and "without training: `dlexp show model=mlp" in text


def test_help_and_list_do_not_import_torch():
    code = textwrap.dedent("""
        import sys
        from dlexp.cli import entry
        for argv in (["--help"], ["list"], ["list", "optimizer"], ["--version"]):
            sys.argv = ["dlexp", *argv]
            try:
                entry.main()
            except SystemExit:
                pass
        print("torch" in sys.modules, "hydra" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False False", out.stdout + out.stderr


@pytest.mark.parametrize("argv, code", [(["list"], 0), (["list", "optimiser"], 2)])
def test_the_process_ends_fast_but_runs_exit_handlers_and_flushes_output(tmp_path, argv, code):
    """With torch loaded, dlexp ends without Python's slow teardown: exit handlers, output and status survive."""
    marker = tmp_path / "atexit-ran"
    script = textwrap.dedent(f"""
        import atexit, sys
        import torch
        from dlexp.cli import entry
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        sys.stdout.write("unflushed-line-without-newline")
        sys.argv = ["dlexp", *{argv!r}]
        entry.main()
        print("not reached")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == code, out.stderr
    assert out.stdout.startswith("unflushed-line-without-newline") and "not reached" not in out.stdout
    assert marker.read_text() == "yes"


def test_cpythons_exit_handler_runner_does_what_the_end_relies_on():
    """`_end` runs the exit handlers through CPython's private `atexit._run_exitfuncs`, then `os._exit`s: this fails
    if CPython changes it underneath (gone; handlers in another order than an ordinary exit's, last registered first;
    a failing handler stopping the others; handlers left to run a second time)."""
    script = textwrap.dedent("""
        import atexit, os, sys
        ran = []
        atexit.register(ran.append, "first")
        atexit.register(lambda: 1 / 0)
        atexit.register(ran.append, "last")
        atexit._run_exitfuncs()
        atexit._run_exitfuncs()  # nothing is left to run
        print(ran)
        sys.stdout.flush()
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "['last', 'first']", out.stdout + out.stderr
    assert out.stderr.count("ZeroDivisionError") == 1  # said once, as at an ordinary exit


def test_list_marks_defaults_and_describes_options(cli):
    result = cli("list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert any("* digits" in line for line in lines)
    assert any("* adam" in line and "Adam" in line for line in lines)
    for group in ("data", "model", "loss", "optimizer", "initializer", "batch", "device", "scheduler", "experiment"):
        assert any(line.startswith(group) for line in lines), group


def test_list_one_group_and_unknown_group(cli):
    only = cli("list", "optimizer")
    assert only.returncode == 0 and "random_search" in only.stdout and "digits" not in only.stdout
    bad = cli("list", "optimiser")
    assert bad.returncode == 2 and "Did you mean 'optimizer'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("width", ["80", "200"])
def test_list_lines_end_without_spaces(cli, width):
    for args in (["list"], ["list", "optimizer"]):
        result = cli(*args, env={"COLUMNS": width})
        assert result.returncode == 0, result.stderr
        padded = [line for line in result.stdout.splitlines() if line != line.rstrip()]
        assert not padded, padded[:3]
        assert max(len(line) for line in result.stdout.splitlines()) <= int(width)


def test_list_shows_your_own_options_from_a_config_dir(cli, tmp_path):
    conf = tmp_path / "myconf" / "optimizer"
    conf.mkdir(parents=True)
    (conf / "slow_sgd.yaml").write_text(
        "# dlexp train optimizer=slow_sgd\n# SGD, slowly.\n_target_: torch.optim.SGD\n_partial_: true\nlr: 0.001\n"
    )
    for args in (
        ["list", "--config-dir", "myconf"],
        ["list", "optimizer", "--config-dir", "myconf"],
        ["list", "--config-dir", "myconf", "optimizer"],
    ):
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        mine = [line for line in result.stdout.splitlines() if "slow_sgd" in line]
        assert len(mine) == 1 and "+ slow_sgd" in mine[0] and "SGD, slowly." in mine[0], result.stdout
        assert "* adam" in result.stdout and "random_search" in result.stdout  # dlexp's own options too
        assert f"+ yours (from {tmp_path / 'myconf'})" in " ".join(result.stdout.split())


def test_list_with_a_missing_config_dir_is_one_sentence(cli, tmp_path):
    result = cli("list", "--config-dir", "nope")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip() == f"error: The config directory {tmp_path / 'nope'} does not exist."
    assert result.stdout == ""


def test_show_composes(cli):
    result = cli("show", "optimizer=sgd", "optimizer.lr=0.5")
    assert result.returncode == 0
    assert "torch.optim.SGD" in result.stdout and "lr: 0.5" in result.stdout


@pytest.mark.parametrize(
    "overrides", [["optimizer.lr=fast"], ["batch.size=0", "optimizer.lr=-1", "loss=bce"]], ids=["one", "several"]
)
def test_show_refuses_what_validate_refuses_in_the_same_words(cli, overrides):
    validated = cli("validate", *overrides)
    shown = cli("show", *overrides)
    assert validated.returncode == 2 and shown.returncode == 2, (shown.stdout, shown.stderr)
    assert shown.stderr == validated.stderr and shown.stdout == ""
    assert "Traceback" not in shown.stderr


def test_train_writes_a_complete_run(cli, tmp_path):
    result = cli("train", "trainer.epochs=1", "log.progress=lines")
    assert result.returncode == 0, result.stderr
    (run,) = run_dirs(tmp_path / "runs")
    assert run.name.endswith("_epochs=1")  # short keys in the name (log.progress is never part of it) ...
    assert status_of(run)["overrides"] == ["trainer.epochs=1", "log.progress=lines"]  # ... the full ones kept
    names = {p.name for p in run.iterdir()}
    assert {"status.json", "config.yaml", "metrics.csv", "train.log"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    status = status_of(run)
    assert status["status"] == "completed" and status["epoch"] == 1 and status["step"] == 45
    assert "epoch 1/1" in result.stdout and "dlexp board" in result.stdout
    assert status["versions"]["torch"]


def test_multirun_jobs_are_named_by_what_sets_them_apart(cli, tmp_path):
    """TensorBoard shows a job's directory name as its run name, cut after ~30 characters: it starts with the
    values that differ between the jobs (short keys), then the job's number; the full overrides stay recorded."""
    result = cli(
        "train",
        "-m",
        "data=xor",
        "optimizer.lr=0.1,1.0",
        "model.activation=tanh,relu",
        "trainer.epochs=1",
        "log.progress=none",
    )
    assert result.returncode == 0, result.stderr
    found = sorted(run_dirs(tmp_path / "runs" / "multirun"), key=lambda p: status_of(p)["sweep_job"])
    assert [p.name for p in found] == [
        "lr=0.1,act=tanh_0",
        "lr=0.1,act=relu_1",
        "lr=1.0,act=tanh_2",
        "lr=1.0,act=relu_3",
    ]
    (sweep,) = {p.parent for p in found}  # one sweep directory ...
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}_lr,act", sweep.name)  # ... named by what it varies
    assert status_of(found[2])["overrides"] == [
        "data=xor",
        "optimizer.lr=1.0",
        "model.activation=tanh",
        "trainer.epochs=1",
        "log.progress=none",
    ]
    assert "optimizer.lr=1.0" in (found[2] / ".hydra" / "overrides.yaml").read_text()
    assert all(status_of(p)["status"] == "completed" for p in found)


def test_a_sweep_carries_its_experiment_and_names_jobs_even_in_a_directory_of_your_choice(cli, tmp_path):
    """The jobs learn what the sweep varies from the launching process (Hydra's resolver cache), also when
    hydra.sweep.dir is given, as the lesson scripts do."""
    result = cli("train", "-m", "experiment=xor_mlp", "optimizer=sgd,adam", "trainer.epochs=1", "log.progress=none")
    assert result.returncode == 0, result.stderr
    (sweep,) = (tmp_path / "runs" / "multirun").iterdir()
    assert sweep.name.endswith("_xor_mlp")
    assert sorted(p.name for p in run_dirs(sweep)) == ["optimizer=adam_1", "optimizer=sgd_0"]
    result = cli(
        "train",
        "-m",
        "experiment=xor_mlp",
        "optimizer.lr=0.5,1",
        "seed=1,2",
        "trainer.epochs=1",
        "log.progress=none",
        "hydra.sweep.dir=mine",
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in sorted(run_dirs(tmp_path / "mine"), key=lambda p: status_of(p)["sweep_job"])] == [
        "lr=0.5,seed=1_0",
        "lr=0.5,seed=2_1",
        "lr=1,seed=1_2",
        "lr=1,seed=2_3",
    ]


@pytest.mark.parametrize(
    "overrides, exclude, name",
    [
        (["optimizer.lr=0.1", "initializer=he_normal"], [], "lr=0.1,init=he_normal"),
        (["optimizer.lr=0.1", "scheduler.lr=0.2", "+model.extra=1"], [], "optimizer.lr=0.1,scheduler.lr=0.2,extra=1"),
        (["model.hidden=[32,32]", "log.dir=/tmp/x y"], ["log.dir"], "hidden=[32,32]"),
        (["data.root=/home/me/my data"], [], "root=_home_me_my_data"),
    ],
)
def test_labels_shorten_keys_keep_them_apart_and_are_safe_in_a_path(overrides, exclude, name):
    from dlexp.config.resolvers import label

    assert label(overrides, exclude) == name


def test_a_label_is_bounded():
    from dlexp.config.resolvers import MAX_LABEL, label

    text = label([f"model.hidden=[{','.join(['512'] * 40)}]"])
    assert len(text) == MAX_LABEL and text.endswith("~")


def test_cfg_job_prints_without_training(cli, tmp_path):
    result = cli("train", "--cfg", "job", "optimizer=sgd")
    assert result.returncode == 0
    assert "torch.optim.SGD" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_user_config_dir_adds_an_option(cli, tmp_path):
    conf = tmp_path / "myconf" / "optimizer"
    conf.mkdir(parents=True)
    (conf / "slow_sgd.yaml").write_text(
        "# dlexp train optimizer=slow_sgd\n# SGD, slowly.\n_target_: torch.optim.SGD\n_partial_: true\nlr: 0.001\n"
    )
    listed = cli(
        "train", "--config-dir", str(tmp_path / "myconf"), "optimizer=slow_sgd", "trainer.epochs=1", "log.progress=none"
    )
    assert listed.returncode == 0, listed.stderr
    (run,) = run_dirs(tmp_path / "runs")
    assert status_of(run)["choices"]["optimizer"] == "slow_sgd"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("optimizer=adamm", "Unknown optimizer 'adamm'. Did you mean 'adam'?"),
        ("optimizer.lrr=0.1", "Unknown key 'optimizer.lrr'. Did you mean 'lr'?"),
        ("+optimizer.lrr=0.1", "Unknown key 'optimizer.lrr' for optimizer=adam (torch.optim.Adam). Did you mean 'lr'?"),
        ("batch.size=abc", "batch.size=abc must be a whole number or null"),
        ("batch.size=0", "batch.size=0 is out of range: it must be at least 1"),
        ("optimizer.lr=-1", "optimizer.lr=-1 is out of range: it must be > 0."),
        ("loss=bce", "loss=bce needs a binary dataset"),
        ("trainer.epochs=-3", "trainer.epochs=-3 is out of range"),
    ],
)
def test_bad_input_one_sentence_exit_2_nothing_written(cli, tmp_path, override, expected):
    result = cli("train", override)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert expected in result.stderr.replace("\n", " "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "runs").exists()


def test_a_sweep_names_the_job_each_problem_belongs_to(cli, tmp_path):
    result = cli("train", "-m", "optimizer=adamm,sgd", "batch.size=0,32")
    assert result.returncode == 2, (result.stdout, result.stderr)
    text = result.stderr.replace("\n", " ")
    assert "[optimizer=adamm batch.size=0] Unknown optimizer 'adamm'" in text  # the job, not a swallowed tag
    assert "[optimizer=sgd batch.size=0] batch.size=0 is out of range" in text
    assert not (tmp_path / "runs").exists()


def test_impossible_pairing_names_both_options(cli, tmp_path):
    result = cli("train", "data=linear", "loss=sparse_ce")
    assert result.returncode == 2
    assert "sparse_ce" in result.stderr and "linear" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_loss_that_does_not_fit_the_models_output_is_refused(cli, tmp_path):
    """bce_probs takes probabilities, bce raw scores: the other kind of output is one sentence, exit 2, nothing written."""
    raw = cli("train", "data=xor", "loss=bce_probs")
    assert raw.returncode == 2, (raw.stdout, raw.stderr)
    assert (
        "loss=bce_probs takes probabilities, but the model's output is raw scores; "
        "set model.output_activation=sigmoid, or use loss=bce (on raw scores)."
    ) in raw.stderr.replace("\n", " ")
    assert "Traceback" not in raw.stderr + raw.stdout
    assert not (tmp_path / "runs").exists()
    assert tmp_path.is_dir()  # the run's own build refused it: its folders are removed, the (empty) cwd stays
    twice = cli("train", "-m", "experiment=xor_mlp", "loss=bce,bce_probs", "trainer.epochs=1")
    assert twice.returncode == 2, (twice.stdout, twice.stderr)
    assert (
        "[loss=bce] loss=bce applies the sigmoid itself and takes raw scores, but the model's output already "
        "goes through a sigmoid; use loss=bce_probs"
    ) in twice.stderr.replace("\n", " ")
    assert "[loss=bce_probs]" not in twice.stderr  # the preset's own loss fits its model
    assert not (tmp_path / "runs").exists()


def test_a_loss_adapter_of_ones_own_needs_no_model_check(cli, tmp_path):
    """An adapter written without check_model (the protocol's optional part) trains: any output is taken."""
    (tmp_path / "myloss.py").write_text(
        textwrap.dedent("""
        import torch.nn.functional as F

        class Squared:
            name = "squared"
            tasks = ("regression",)

            def resolve(self, data):
                return self

            def check(self, data):
                return None

            def out_features(self, data):
                return data.target_dim

            def encode(self, y, data):
                return y.float()

            def __call__(self, output, target):
                return F.mse_loss(output, target)

            def predict(self, output):
                return None
    """)
    )
    (tmp_path / "mine" / "loss").mkdir(parents=True)
    (tmp_path / "mine" / "loss" / "squared.yaml").write_text("_target_: myloss.Squared\n")
    result = cli(
        "train",
        "--config-dir",
        str(tmp_path / "mine"),
        "loss=squared",
        "data=sine",
        "allow_targets=[myloss]",
        "trainer.epochs=1",
        "log.progress=none",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert status_of(run_dir)["status"] == "completed"


def test_validate_reports_every_problem_at_once(cli, tmp_path):
    result = cli("validate", "optimizer.lrr=1", "batch.size=0", "trainer.epochs=x")
    assert result.returncode == 2
    text = result.stderr.replace("\n", " ")
    assert "optimizer.lrr" in text and "batch.size=0" in text and "trainer.epochs=x" in text
    ok = cli("validate", "-m", "optimizer=sgd,adam")
    assert ok.returncode == 0 and "2 configurations" in ok.stdout


def test_sweep_with_one_bad_point_is_refused_before_any_job(cli, tmp_path):
    result = cli("train", "-m", "optimizer.lr=0.1,-1", "trainer.epochs=1")
    assert result.returncode == 2 and "[optimizer.lr=-1] optimizer.lr=-1 is out of range" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_disallowed_target_is_refused_before_import(cli, tmp_path):
    marker = tmp_path / "pwned"
    conf = tmp_path / "evil" / "optimizer"
    conf.mkdir(parents=True)
    (conf / "evil.yaml").write_text(f"_target_: os.system\ncommand: touch {marker}\n")
    result = cli("train", "--config-dir", str(tmp_path / "evil"), "optimizer=evil")
    assert result.returncode == 2
    assert "optimizer._target_=os.system is not allowed" in result.stderr
    assert not marker.exists()


def test_validate_reports_structure_ranges_and_the_pairing_together(cli, tmp_path):
    result = cli("validate", "batch.size=0", "optimizer.lr=-1", "loss=bce", "trainer.epochs=-3")
    assert result.returncode == 2
    lines = [line.strip("- ").strip() for line in result.stderr.splitlines()[1:]]
    assert lines == [
        "trainer.epochs=-3 is out of range: it must be at least 0.",
        "batch.size=0 is out of range: it must be at least 1.",
        "optimizer.lr=-1 is out of range: it must be > 0.",
        "loss=bce needs a binary dataset, but data=digits has 10 classes; "
        "use loss=ce, loss=sparse_ce, loss=mse, loss=mae or loss=huber.",
    ], result.stderr


INCOMPLETE = "its value is not complete (an unclosed bracket or quote?)"
MALFORMED = [
    ("optimizer", "it has no '='"),
    ("model.hidden=[32,", INCOMPLETE),
    ("=adam", "it has no key before '='"),
    ("optimizer.lr='0.1", INCOMPLETE),
]


@pytest.mark.parametrize("command", ["train", "show", "validate", "resume"])
@pytest.mark.parametrize("token, why", MALFORMED, ids=[t for t, _ in MALFORMED])
def test_a_malformed_override_is_one_sentence_naming_it(cli, tmp_path, command, token, why):
    args = [command, *(["some-run"] if command == "resume" else []), token]
    result = cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip() == (
        f"configuration error: Cannot read the override '{token}': {why}; write each "
        "override as key=value, e.g. optimizer=adam or model.hidden=[32,32]."
    ), result.stderr
    assert result.stdout == "" and not (tmp_path / "runs").exists()


def test_an_unknown_flag_is_one_sentence(cli, tmp_path):
    result = cli("train", "--frobnicate")
    assert result.returncode == 2 and "Unknown flag '--frobnicate'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_a_missing_device_is_refused_by_validate_and_train(cli, tmp_path):
    expected = (
        "configuration error: device=cuda was asked for, but this machine has no CUDA device; "
        "use device=cpu or device=auto."
    )
    for command in ("validate", "train"):
        result = cli(command, "device=cuda")
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.strip() == expected, result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_constructor_refusal_in_a_single_run_leaves_nothing(cli, tmp_path):
    """What only the build can find (the cnn pooling 8x8 digits to nothing) is still one sentence, exit 2."""
    result = cli("train", "model=cnn", "model.channels=[4,4,4,4]")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "pools the 8x8 input down to nothing" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_sweep_without_m_says_how_to_sweep(cli, tmp_path):
    result = cli("train", "optimizer=sgd,adam")
    assert result.returncode == 2
    assert "'optimizer=sgd,adam' sweeps over several values: add -m" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "flags, named",
    [
        (["-m", "--cfg", "job"], "-m/--multirun and --cfg"),
        (["--cfg", "job", "-m"], "-m/--multirun and --cfg"),
        (["--run", "-m"], "--run and -m/--multirun"),
        (["--info", "-m"], "-m/--multirun and --info"),
        (["--cfg", "job", "--info"], "--cfg and --info"),
        (["--run", "--cfg", "job"], "--run and --cfg"),
        (["-sc", "-m"], "-m/--multirun and --shell-completion"),
    ],
)
def test_flags_that_cannot_go_together_are_one_sentence(cli, tmp_path, flags, named):
    """Hydra does one of --run, --multirun, --cfg, --info, --shell-completion: two of them are refused in dlexp's
    words, exit 2, before anything is composed."""
    result = cli("train", *flags, "optimizer=sgd,adam" if "-m" in flags else "optimizer=sgd")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip() == (
        f"configuration error: {named} cannot be given together: a command does one "
        "of --run, -m/--multirun, --cfg, --info and --shell-completion."
    ), result.stderr
    assert result.stdout == "" and not (tmp_path / "runs").exists()


def test_resolve_without_cfg_is_one_sentence(cli, tmp_path):
    result = cli("train", "-m", "--resolve", "optimizer=sgd,adam")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.strip() == (
        "configuration error: --resolve goes with --cfg (dlexp train --cfg job "
        "--resolve): it resolves the interpolations of the config --cfg prints."
    ), result.stderr
    assert not (tmp_path / "runs").exists()
