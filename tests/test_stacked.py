"""A stacked group against each of its jobs run alone with `dlexp.run.loop.fit`: same steps, losses, weights, state.

Every job is composed through the real config and built by `build.assemble`, exactly as a single run; the
oracle is that very job trained alone by `loop.fit` with `build.evaluator`. The stack computes what the single
runs compute, operation for operation, except that its matrix products are batched: the same steps, epochs,
evaluations and observer calls, and numbers equal to float32 rounding (tests/tolerance.py says how close and
why not bit for bit). A stack continued from its own checkpoint equals the uninterrupted stack exactly.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_cfg
from tolerance import STEP_RTOL, assert_close_losses, assert_close_tensors, assert_same_state, rel

from dlexp.observe.guard import Diverged, DivergenceGuard
from dlexp.parts.models import ACTIVATIONS
from dlexp.run import build, checkpoint, loop
from dlexp.stacked import StackedGroup, fit_stacked, plan_groups

pytestmark = pytest.mark.kernels  # a stack against runs alone: run again with DLEXP_TEST_ROUNDING=ulp


def schedule(exp, eval_every=1):
    """The single run's schedule: its epochs, evaluated every `eval_every` (the last always), no captures."""
    return loop.Schedule(exp.epochs, len(exp.batches), eval_every=eval_every)


class Record:
    """What loop.fit tells an observer, in order: the oracle for what fit_stacked tells each job's observers."""

    def __init__(self):
        self.events: list[tuple] = []
        self.losses: list[float] = []
        self.metrics: list[dict[str, float]] = []

    def on_start(self, state):
        self.events.append(("start", state.step, state.epoch, state.batch))

    def on_step(self, state, loss):
        assert loss.dim() == 0
        self.events.append(("step", state.step, state.epoch, state.batch))
        self.losses.append(loss.item())

    def on_epoch(self, state, metrics):
        self.events.append(("epoch", state.step, state.epoch, state.batch, tuple(metrics)))
        self.metrics.append(dict(metrics))


class StopAt:
    """Sets state.stop at a given step, as Ctrl-C would."""

    def __init__(self, step: int):
        self.step = step

    def on_step(self, state, loss):
        if state.step == self.step:
            state.stop = "interrupted"


def make(*overrides: str):
    cfg, _ = compose_cfg(*overrides, "device=cpu", "log.progress=none")
    return build.assemble(cfg)


def alone(overrides, extra=(), state=None, exp=None):
    """The oracle: one job trained by loop.fit."""
    exp = exp or make(*overrides)
    record = Record()
    state = loop.fit(
        exp.model,
        exp.loss,
        exp.optimizer,
        exp.batches,
        schedule(exp, 1),
        build.evaluator(exp),
        [*extra, record],
        exp.scheduler,
        state,
    )
    return exp, record, state


def schedules(exps, eval_every=1):
    """Each job's single-run schedule; `eval_every` one interval for all, or one per job."""
    every = eval_every if isinstance(eval_every, list) else [eval_every] * len(exps)
    return [schedule(exp, e) for exp, e in zip(exps, every)]


def stacked(jobs, extra=None, eval_every=1, **kwargs):
    exps = [make(*overrides) for overrides in jobs]
    records = [Record() for _ in jobs]
    observers = [[*(extra[i] if extra else ()), records[i]] for i in range(len(jobs))]
    outcomes = fit_stacked(StackedGroup(exps), observers=observers, schedules=schedules(exps, eval_every), **kwargs)
    return exps, records, outcomes


def assert_close_metrics(
    single: list[dict[str, float]], stacked: list[dict[str, float]], rtol: float = STEP_RTOL
) -> None:
    """The same evaluations (epochs, metric names), each value within `rtol` relative."""
    assert [list(m) for m in stacked] == [list(m) for m in single]
    for m_single, m_stacked in zip(single, stacked):
        for k in m_single:
            assert rel(m_single[k], m_stacked[k]) <= rtol, (k, m_single[k], m_stacked[k])


def assert_same_run(single_exp, single: Record, exp, record: Record, step_rtol: float = STEP_RTOL) -> float:
    """The stacked job saw what the single run saw (every event, in order), and ends where it ends, to float32
    rounding. Returns the largest relative difference of a step's loss."""
    assert [e[:4] for e in record.events] == [e[:4] for e in single.events]
    worst = assert_close_losses(single.losses, record.losses, step_rtol)
    assert_close_metrics(single.metrics, record.metrics, step_rtol)
    for k, (p, q) in enumerate(zip(single_exp.model.parameters(), exp.model.parameters())):
        assert_close_tensors(p, q, f"parameter {k}")
    assert_same_state(single_exp.optimizer.state_dict(), exp.optimizer.state_dict(), "optimizer")
    if single_exp.scheduler is not None:
        assert exp.scheduler.state_dict() == single_exp.scheduler.state_dict()
    return worst


# --- every optimizer: a group whose jobs differ in seed, initializer, scheduler and hyper-parameters -------
BASE = ["data=moons", "model.hidden=[16,16]", "model.activation=tanh", "trainer.epochs=3", "batch=mini"]
VARIANTS = [
    ["seed=0"],
    ["seed=1", "initializer=xavier_uniform", "scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5"],
    ["seed=2", "initializer=he_normal", "scheduler=exponential", "scheduler.gamma=0.8"],
    ["seed=3", "initializer=normal_small", "scheduler=cosine"],
]
OPTIMIZERS = {
    "sgd": [
        ["optimizer.lr=0.1"],
        ["optimizer.lr=0.05", "optimizer.weight_decay=0.01"],
        ["optimizer.lr=0.3"],
        ["optimizer.lr=0.2"],
    ],
    "momentum": [
        [],
        ["optimizer.momentum=0.5", "optimizer.dampening=0.1"],
        ["optimizer.lr=0.03", "optimizer.weight_decay=0.001"],
        ["optimizer.momentum=0.95"],
    ],
    "nesterov": [
        [],
        ["optimizer.momentum=0.8", "optimizer.lr=0.02"],
        ["optimizer.weight_decay=0.01"],
        ["optimizer.lr=0.05"],
    ],
    "adagrad": [
        [],
        ["optimizer.lr=0.05", "optimizer.lr_decay=0.01"],
        ["optimizer.initial_accumulator_value=0.1", "optimizer.eps=1e-6"],
        ["optimizer.weight_decay=0.01"],
    ],
    "rmsprop": [
        [],
        ["optimizer.alpha=0.9", "optimizer.lr=0.003"],
        ["optimizer.eps=1e-6", "optimizer.weight_decay=0.01"],
        ["optimizer.lr=0.0003"],
    ],
    "adam": [
        [],
        ["optimizer.betas=[0.8,0.99]", "optimizer.lr=0.003"],
        ["optimizer.eps=1e-6", "optimizer.weight_decay=0.01"],
        ["optimizer.lr=0.01"],
    ],
    "adamw": [
        [],
        ["optimizer.weight_decay=0.1", "optimizer.lr=0.003"],
        ["optimizer.betas=[0.85,0.995]"],
        ["optimizer.weight_decay=0.0"],
    ],
    "adam_then_sgd": [
        ["optimizer.switch_epoch=1"],
        ["optimizer.switch_epoch=2", "optimizer.sgd_lr=0.05"],
        ["optimizer.switch_epoch=1", "optimizer.adam_lr=0.01"],
        ["optimizer.switch_epoch=0"],
    ],
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_group_equals_its_jobs_run_alone(name):
    jobs = [BASE + [f"optimizer={name}", *variant, *hp] for variant, hp in zip(VARIANTS, OPTIMIZERS[name])]
    assert len(plan_groups([make(*j) for j in jobs]).groups) == 1
    exps, records, outcomes = stacked(jobs)
    for job, exp, record, outcome in zip(jobs, exps, records, outcomes):
        assert outcome.error is None and outcome.state.epoch == 3 and outcome.state.step == 75
        single_exp, single, state = alone(job)
        assert_same_run(single_exp, single, exp, record)
        assert (outcome.state.epoch, outcome.state.step, outcome.state.batch) == (state.epoch, state.step, state.batch)


def test_xor_seeds_equal_alone_over_2000_steps():
    """experiment=xor_mlp: every job's per-step losses equal its run alone to 1e-5 relative over 2,000 steps."""
    jobs = [["experiment=xor_mlp", f"seed={s}", "trainer.epochs=2000"] for s in (777, 0, 1, 2)]
    exps, records, outcomes = stacked(jobs, eval_every=100)
    assert StackedGroup([make(*j) for j in jobs[:2]]).batches.x.shared  # XOR's four points: one copy for all
    for job, exp, record, outcome in zip(jobs, exps, records, outcomes):
        assert outcome.error is None and outcome.state.step == 2000
        single_exp = make(*job)
        single = Record()
        loop.fit(
            single_exp.model,
            single_exp.loss,
            single_exp.optimizer,
            single_exp.batches,
            schedule(single_exp, 100),
            build.evaluator(single_exp),
            [single],
            single_exp.scheduler,
        )
        assert_same_run(single_exp, single, exp, record)


def test_digits_adam_group_equals_alone():
    """The default digits MLP, Adam, batch 32: every step's loss, the final val/loss (1% was asked), the weights and
    Adam's state, to float32 rounding. Adam carries the last bits furthest (each step moves a weight by about lr,
    whatever its gradient's size): step losses differ by up to 4e-6 relative on one AVX-512 CPU, 1.2e-6 here with
    every batched product one unit in the last place off; hence 1e-4 for this test. (With four units off, the
    lr=0.01 job drifts to 4e-3 by its 75th step: Adam at that rate is chaotic enough to grow any difference.)"""
    jobs = [
        ["optimizer=adam", f"seed={s}", f"optimizer.lr={lr}", "trainer.epochs=3"]
        for s, lr in ((0, 0.001), (1, 0.003), (2, 0.0003), (0, 0.01))
    ]
    exps, records, outcomes = stacked(jobs)
    assert not StackedGroup([make(*j) for j in jobs]).batches.x.shared  # the split depends on the seed
    for job, exp, record in zip(jobs, exps, records):
        single_exp, single, _ = alone(job)
        assert_same_run(single_exp, single, exp, record, step_rtol=1e-4)


def test_a_diverging_job_stops_alone_at_its_own_step():
    jobs = [["experiment=learning_rate", f"optimizer.lr={lr}", "trainer.epochs=60"] for lr in (0.1, 1.0, 0.01)]
    exps = [make(*j) for j in jobs]
    guards = [[DivergenceGuard(e.model, e.device, 1)] for e in exps]
    records = [Record() for _ in jobs]
    outcomes = fit_stacked(
        StackedGroup(exps), observers=[[*g, r] for g, r in zip(guards, records)], schedules=schedules(exps, 10)
    )

    single_exp = make(*jobs[1])
    with pytest.raises(Diverged) as alone_diverged:
        loop.fit(
            single_exp.model,
            single_exp.loss,
            single_exp.optimizer,
            single_exp.batches,
            schedule(single_exp, 10),
            build.evaluator(single_exp),
            [DivergenceGuard(single_exp.model, single_exp.device, 1)],
            single_exp.scheduler,
        )
    err = outcomes[1].error
    # the step a loss crosses the line may move by a step or two with the last bits (15 vs 16 seen on one CPU)
    assert isinstance(err, Diverged) and abs(err.step - alone_diverged.value.step) <= 3 and err.what == "the loss"
    assert outcomes[1].state.step == err.step < 60
    assert len(records[1].losses) == err.step - 1  # the guard stops its step's observers
    for i in (0, 2):  # the others carry on, unchanged
        assert outcomes[i].error is None and outcomes[i].state.epoch == 60
        exp = make(*jobs[i])
        single = Record()
        loop.fit(
            exp.model,
            exp.loss,
            exp.optimizer,
            exp.batches,
            schedule(exp, 10),
            build.evaluator(exp),
            [DivergenceGuard(exp.model, exp.device, 1), single],
            exp.scheduler,
        )
        assert_same_run(exp, single, exps[i], records[i])


def test_jobs_with_fewer_epochs_finish_first_and_eval_every_is_per_job():
    base = BASE[:-2] + ["batch=mini", "optimizer=momentum"]
    jobs = [base + [f"seed={s}", f"trainer.epochs={e}"] for s, e in ((0, 2), (1, 5), (2, 3))]
    exps, records, outcomes = stacked(jobs, eval_every=[1, 2, 2])
    for i, (job, exp, record) in enumerate(zip(jobs, exps, records)):
        single_exp = make(*job)
        single = Record()
        loop.fit(
            single_exp.model,
            single_exp.loss,
            single_exp.optimizer,
            single_exp.batches,
            schedule(single_exp, [1, 2, 2][i]),
            build.evaluator(single_exp),
            [single],
            single_exp.scheduler,
        )
        assert_same_run(single_exp, single, exp, record)
        assert outcomes[i].state.epoch == exp.epochs
    assert [len(r.metrics) for r in records] == [2, 3, 2]  # epochs 1,2 | 2,4,5 | 2,3


# --- checkpoints: a stacked job's state is a single run's, in both directions ------------------------------
RESUME = BASE[:-1] + ["trainer.epochs=4", "scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.7"]
RESUME_JOBS = [RESUME + ["optimizer=adam", "seed=0"], RESUME + ["optimizer=adam", "seed=1", "optimizer.lr=0.003"]]


def _save(tmp_path, name, exp, state):
    path = tmp_path / f"{name}.pt"
    checkpoint.save(
        path, model=exp.model, optimizer=exp.optimizer, scheduler=exp.scheduler, state=state, config_yaml=""
    )
    return checkpoint.load(path)


def _uninterrupted(job):
    exp, record, state = alone(job)
    return record


@pytest.mark.parametrize("stop_step", [50, 37])  # at an epoch boundary, and mid-epoch (25 steps an epoch)
def test_a_stacked_jobs_checkpoint_continues_as_a_single_run(tmp_path, stop_step):
    exps, records, outcomes = stacked(RESUME_JOBS, extra=[[StopAt(stop_step)], [StopAt(stop_step)]])
    for i, (job, exp, outcome) in enumerate(zip(RESUME_JOBS, exps, outcomes)):
        state = outcome.state
        assert state.stop == "interrupted" and state.step == stop_step
        payload = _save(tmp_path, f"job{i}", exp, state)
        resumed = make(*job)
        resumed_state = loop.TrainState()
        checkpoint.restore(
            payload, model=resumed.model, optimizer=resumed.optimizer, scheduler=resumed.scheduler, state=resumed_state
        )
        _, continued, final = alone(job, state=resumed_state, exp=resumed)
        full = _uninterrupted(job)
        assert final.step == 100
        tail = full.losses[stop_step:]
        assert_close_losses(tail, continued.losses)
        assert_close_metrics(full.metrics[-len(continued.metrics) :], continued.metrics)


def test_single_runs_checkpoints_continue_as_one_stack(tmp_path):
    """Import: two single runs interrupted mid-epoch at the same step, restored and stacked, finish as if alone."""
    exps, states = [], []
    for i, job in enumerate(RESUME_JOBS):
        exp, _, state = alone(job, extra=[StopAt(37)])
        payload = _save(tmp_path, f"single{i}", exp, state)
        resumed = make(*job)
        resumed_state = loop.TrainState()
        checkpoint.restore(
            payload, model=resumed.model, optimizer=resumed.optimizer, scheduler=resumed.scheduler, state=resumed_state
        )
        exps.append(resumed)
        states.append(resumed_state)
    assert plan_groups(exps, states=states).groups == [[0, 1]]
    records = [Record() for _ in exps]
    outcomes = fit_stacked(StackedGroup(exps, states), states, observers=[[r] for r in records])
    for job, record, outcome in zip(RESUME_JOBS, records, outcomes):
        full = _uninterrupted(job)
        assert outcome.state.step == 100 and outcome.error is None
        assert_close_losses(full.losses[37:], record.losses)
        assert_close_metrics(full.metrics[-len(record.metrics) :], record.metrics)


def test_a_stop_flag_stops_every_job_at_the_same_step():
    class Flag:
        stop = None

    flag = Flag()

    class Raise:
        def on_step(self, state, loss):
            if state.step == 30:
                flag.stop = "terminated"

    exps, records, outcomes = stacked(RESUME_JOBS, extra=[[Raise()], []], stop=flag)
    assert [o.state.stop for o in outcomes] == ["terminated", "terminated"]
    assert [o.state.step for o in outcomes] == [30, 30]
    assert all(o.state.loss_sum is not None and o.state.batch == 5 for o in outcomes)


def test_an_observer_error_ends_only_its_job():
    class Boom:
        def on_epoch(self, state, metrics):
            raise RuntimeError("disk full")

    exps, records, outcomes = stacked(RESUME_JOBS, extra=[[Boom()], []])
    assert isinstance(outcomes[0].error, RuntimeError) and outcomes[0].state.epoch == 1
    assert outcomes[1].error is None and outcomes[1].state.epoch == 4


# --- grouping --------------------------------------------------------------------------------------------
def test_grouping_and_the_reason_each_excluded_job_runs_alone():
    moons = ["data=moons", "trainer.epochs=1"]
    exps = [
        make(*moons, "seed=0"),
        make(*moons, "seed=1"),
        make(*moons, "batch.size=16"),
        make(*moons, "model=cnn", "data=digits"),
        make(*moons, "optimizer=random_search"),
        make(*moons, "model.batchnorm=true"),
        make(*moons, "model.dropout=0.1"),
        make(*moons, "optimizer=sgd"),
        make(*moons, "optimizer=sgd", "seed=3"),
        make(*moons, "loss=ce"),
        make("data=gaussian"),
        make(*moons, "model.hidden=[32]"),
    ]
    plan = plan_groups(exps)
    assert sorted(plan.groups) == [[0, 1], [7, 8]]  # optimizer families: separate groups
    assert plan.alone == {
        2: "batch.size differs",
        3: "model=cnn cannot be stacked",
        4: "optimizer random_search cannot be stacked",
        5: "batchnorm cannot be stacked",
        6: "dropout cannot be stacked",
        9: "loss differs",
        10: "data differs",
        11: "model differs",
    }


def test_an_activation_with_parameters_runs_alone_with_its_reason(prelu):
    """nn.PReLU learns its slope: a stack would apply job 0's to every job, so the grouping refuses it."""
    moons = ["data=moons", "trainer.epochs=1"]
    exps = [make(*moons, "model.activation=prelu", f"seed={s}") for s in (0, 1)]
    exps += [make(*moons, f"seed={s}") for s in (0, 1)]
    plan = plan_groups(exps)
    assert plan.groups == [[2, 3]]
    reason = "activation prelu cannot be stacked: it has parameters of its own"
    assert plan.alone == {0: reason, 1: reason}
    with pytest.raises(ValueError, match=reason):
        StackedGroup(exps[:2])


def test_the_optimizer_race_stacks_by_family_and_each_job_equals_alone():
    """sgd, momentum and nesterov are one family (torch.optim.SGD), adam and adamw another: one stack each, every
    job its single run; the others run alone."""
    race = [
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adam",
        "adamw",
        "random_search",
        "random_local_search",
    ]
    plan = plan_groups([make(*BASE, f"optimizer={name}") for name in race])
    assert sorted(plan.groups) == [[0, 1, 2], [5, 6]]
    assert plan.alone == {
        3: "optimizer differs",
        4: "optimizer differs",
        7: "optimizer random_search cannot be stacked",
        8: "optimizer random_local_search cannot be stacked",
    }
    for family in (race[:3], race[5:7]):
        jobs = [BASE + [f"optimizer={name}"] for name in family]
        exps, records, outcomes = stacked(jobs)
        for job, exp, record, outcome in zip(jobs, exps, records, outcomes):
            assert outcome.error is None
            single_exp, single, _ = alone(job)
            assert_same_run(single_exp, single, exp, record)


def test_unlabelled_jobs_stack_untrained():
    """experiment=init_study: never trained, whatever the optimizer; one stack per architecture."""
    exps = [
        make("experiment=init_study", f"initializer={i}", f"model.activation={a}", f"optimizer={o}")
        for i, a, o in (
            ("normal", "sigmoid", "adam"),
            ("xavier_normal", "sigmoid", "sgd"),
            ("he_normal", "relu", "adam"),
            ("normal_small", "relu", "adam"),
        )
    ]
    assert plan_groups(exps).groups == [[0, 1], [2, 3]]
    group = StackedGroup(exps[:2])
    assert not group.trainable and group.optimizer is None
    outcomes = fit_stacked(group)
    assert [(o.error, o.state.step, o.state.epoch) for o in outcomes] == [(None, 0, 0)] * 2


def test_unknown_loss_adapters_and_optimizers_fall_back_with_a_reason():
    from dlexp.parts import losses

    class MyLoss(losses.MSE):  # a new loss that inherits mse's elementwise form: stacking it would score mse
        name = "my_loss"

        def __call__(self, output, target):
            return (output - target).abs().pow(3).mean()

    exp = make("data=sine")
    exp.loss = MyLoss().resolve(exp.data)
    other = make("data=moons", "optimizer=sgd")
    other.optimizer = torch.optim.LBFGS(other.model.parameters())
    plan = plan_groups([exp, make("data=sine"), other])
    assert plan.alone[0] == "loss my_loss cannot be stacked"
    assert plan.alone[2] == "optimizer lbfgs cannot be stacked"
    with pytest.raises(ValueError, match="cannot form one stack"):
        StackedGroup([exp, make("data=sine")])


def test_max_group_splits_large_groups():
    exps = [make("experiment=xor_mlp", f"seed={s}", "trainer.epochs=1") for s in range(5)]
    assert plan_groups(exps, max_group=2).groups == [[0, 1], [2, 3], [4]]
    assert plan_groups(exps, max_group=3).groups == [[0, 1, 2], [3, 4]]
    assert plan_groups(exps).groups == [[0, 1, 2, 3, 4]]


def test_memory_grows_with_parameters_and_only_with_data_that_differ():
    xor = [make("experiment=xor_mlp", f"seed={s}") for s in range(4)]
    floats = sum(p.numel() for p in xor[0].model.parameters()) * 4  # 4 jobs
    assert StackedGroup(xor).nbytes == 2 * floats * 4  # float32 parameters + gradients; SGD keeps no state
    one = StackedGroup([make("seed=0")])
    same_data = StackedGroup([make("seed=0", f"optimizer.lr={lr}") for lr in (0.1, 0.01, 0.001, 0.0001)])
    assert same_data.batches.x.shared and same_data.nbytes == 4 * one.nbytes
    own_data = StackedGroup([make(f"seed={s}") for s in range(4)])  # the split depends on the seed
    exp = make("seed=0")
    per_job = sum(
        t.numel() * t.element_size()
        for t in (exp.batches.x, exp.batches.y, exp.data.x_val, exp.y_val, exp.data.y_val, exp.data.y_train)
    )
    assert own_data.nbytes == 4 * one.nbytes + 4 * per_job


def test_evaluate_matches_the_single_run_evaluator():
    jobs = [["data=spiral", "loss=sparse_ce", f"seed={s}"] for s in range(3)]
    exps = [make(*j) for j in jobs]
    group = StackedGroup(exps)
    for row, metrics in enumerate(group.metrics()):
        alone_metrics = build.evaluator(make(*jobs[row]))(loop.TrainState())
        assert list(metrics) == list(alone_metrics)
        assert all(rel(alone_metrics[k], metrics[k]) <= STEP_RTOL for k in metrics)  # cross-entropy's sum order
    assert math.isfinite(group.metrics()[0]["val/loss"])


@pytest.mark.parametrize(
    "data, loss",
    [
        ("sine", "mse"),
        ("sine", "mae"),
        ("sine", "huber"),
        ("sine", "gaussian_nll"),
        ("spiral", "ce"),
        ("spiral", "sparse_ce"),
        ("moons", "bce"),
    ],
)
def test_each_stackable_loss_equals_alone(data, loss):
    jobs = [
        [f"data={data}", f"loss={loss}", "model.hidden=[32,32]", "trainer.epochs=2", f"seed={s}", f"optimizer.lr={lr}"]
        for s, lr in ((0, 0.01), (1, 0.003), (0, 0.001))
    ]
    exps, records, outcomes = stacked(jobs)
    for job, exp, record in zip(jobs, exps, records):
        single_exp, single, _ = alone(job)
        assert_same_run(single_exp, single, exp, record)


@pytest.mark.parametrize(
    "setup",
    [
        ["model=perceptron", "data=digits"],  # Flatten + one Linear on images
        ["model=mlp", "model.hidden=[]", "data=blobs"],
        ["model.activation=leaky_relu", "data=circles", "model.hidden=[8]"],
        ["model.activation=gelu", "data=spiral", "model.hidden=[16,16]"],
        ["model.activation=identity", "data=linear", "model.hidden=[4]"],
        ["experiment=xor_mlp", "batch=stochastic", "trainer.epochs=20"],  # size 1, shuffled per job
        ["data=moons", "batch.size=50", "batch.shuffle=false", "model.hidden=[8]"],  # slices, no shuffle
    ],
)
def test_models_and_batchings_equal_alone(setup):
    jobs = [
        setup + [f"seed={s}", "trainer.epochs=3"] if "trainer.epochs=20" not in setup else setup + [f"seed={s}"]
        for s in (0, 1, 2)
    ]
    exps, records, outcomes = stacked(jobs)
    for job, exp, record in zip(jobs, exps, records):
        single_exp, single, _ = alone(job)
        assert_same_run(single_exp, single, exp, record)


def test_a_final_sigmoid_and_bce_on_probabilities():
    """XOR ending in an explicit Sigmoid, BCE on probabilities: a new adapter stacks by its own elementwise form."""
    import torch.nn.functional as F

    from dlexp.parts import losses

    class ProbabilityBCE(losses.BCE):
        def __call__(self, output, target):
            return F.binary_cross_entropy(output, target)

        def elementwise(self, output, target):
            return F.binary_cross_entropy(output, target, reduction="none")

        def predict(self, output):
            return (output[:, 0] > 0.5).long()

    def job(seed: int):
        exp = make("experiment=xor_mlp", f"seed={seed}", "trainer.epochs=300")
        exp.model.append(torch.nn.Sigmoid())  # no parameters: the optimizer holds the same ones
        exp.loss = ProbabilityBCE().resolve(exp.data)
        return exp

    exps = [job(s) for s in (777, 0, 1)]
    records = [Record() for _ in exps]
    fit_stacked(StackedGroup(exps), observers=[[r] for r in records], schedules=schedules(exps, 100))
    for seed, exp, record in zip((777, 0, 1), exps, records):
        single_exp = job(seed)
        single = Record()
        loop.fit(
            single_exp.model,
            single_exp.loss,
            single_exp.optimizer,
            single_exp.batches,
            schedule(single_exp, 100),
            build.evaluator(single_exp),
            [single],
            single_exp.scheduler,
        )
        assert_same_run(single_exp, single, exp, record)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_the_training_pass_by_hand_equals_autograd_for_every_activation(activation):
    """A stack whose activations are all listed (`_backward_rule`) is differentiated by hand: the kernels autograd
    runs, without its graph. The same ops on the same data: the same losses and gradients, bit for bit."""
    from dlexp.stacked.model import StackedMLP

    exps = [
        make("data=moons", "batch=full", "model.hidden=[6,5]", f"model.activation={activation}", f"seed={s}")
        for s in (0, 1)
    ]
    group = StackedGroup(exps)
    assert group.model.rules is not None
    x, y = group.batches.batch(0)
    by_hand = group.train_step(x, y)
    hand = [p.grad.clone() for p in group.model.params]
    by_autograd = StackedGroup(exps)  # the same fresh networks (train_step above changed only the stack's copy)
    by_autograd.model.rules = None  # as for an activation without a rule
    assert torch.equal(by_autograd.train_step(x, y), by_hand)
    assert all(torch.equal(p.grad, g) for p, g in zip(by_autograd.model.params, hand))
    assert StackedMLP([torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(inplace=True))]).rules is None
