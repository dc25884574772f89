"""Which jobs can be trained as one stacked model, and the stack built from them.

A job is an `Experiment` built by `dlexp.run.build.assemble` exactly as for a single run: its own initial weights,
`Batches` (own seed, own shuffle), torch optimizer (own hyper-parameters) and scheduler. A group is a list of
such jobs that share what the stack needs to share (`KEY`); `StackedGroup` builds the stack from them, and
writes each job's numbers back into its own model and optimizer whenever they are wanted alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from dlexp.run.build import evaluate
from dlexp.stacked.batches import Rows, StackedBatches
from dlexp.stacked.losses import StackedLoss, loss_key, loss_problem
from dlexp.stacked.model import StackedMLP, architecture
from dlexp.stacked.optim import optimizer_kind, optimizer_problem, stack_optimizer

MAX_GROUP = 64  # jobs per stack by default (conf/hydra/launcher/vectorized.yaml says why): memory grows with N

# What jobs must share to be stacked, in the order a reason names the first difference ("batch.size differs").
KEY = ("device", "data", "loss", "model", "batch.size", "batch.shuffle", "optimizer", "resume position")


def job_problem(exp) -> str | None:
    """Why this job cannot be stacked with any other, or None. (Unlabelled data is never trained: such a stack only
    looks at the fresh networks, whatever their loss and optimizer.)"""
    shape = architecture(exp.model)
    if isinstance(shape, str):
        return shape
    if len(exp.data.feature_shape) > 1 and shape[0] != "Flatten":
        return "a model without Flatten on image inputs cannot be stacked"
    if not exp.trainable:
        return None
    return loss_problem(exp.loss) or optimizer_problem(exp.optimizer, list(exp.model.parameters()))


def job_key(exp, state=None) -> tuple:
    """The values of `KEY` for one stackable job."""
    d = exp.data
    data = (d.task, d.feature_shape, d.n_train, d.n_val, d.n_classes, str(d.x_train.dtype))
    if not exp.trainable:  # never trained: the stack only evaluates the fresh networks
        return str(exp.device), data, "untrained", architecture(exp.model), None, None, None, 0
    loss = (loss_key(exp.loss), tuple(exp.y_train.shape), str(exp.y_train.dtype))  # with its target encoding
    return (
        str(exp.device),
        data,
        loss,
        architecture(exp.model),
        exp.batches.size,
        exp.batches.shuffle,
        optimizer_kind(exp.optimizer),
        state.batch if state is not None else 0,
    )


@dataclass
class Plan:
    groups: list[list[int]] = field(default_factory=list)  # job numbers, each list one stack
    alone: dict[int, str] = field(default_factory=dict)  # job number -> why it runs on its own


def plan_groups(exps: Sequence, max_group: int = MAX_GROUP, states: Sequence | None = None) -> Plan:
    """Split jobs into stackable groups (at most `max_group` jobs each); the rest run alone, each with a reason."""
    plan = Plan()
    clusters: dict[tuple, list[int]] = {}
    for i, exp in enumerate(exps):
        problem = job_problem(exp)
        if problem:
            plan.alone[i] = problem
            continue
        clusters.setdefault(job_key(exp, states[i] if states is not None else None), []).append(i)
    ranked = sorted(clusters.items(), key=lambda kv: -len(kv[1]))
    for key, jobs in ranked:
        if len(jobs) == 1:
            others = [k for k, _ in ranked if k != key]
            plan.alone[jobs[0]] = _difference(key, others[0]) if others else "no other job to stack it with"
            continue
        if max_group < 2:
            plan.alone.update(dict.fromkeys(jobs, f"max_group={max_group} leaves no room to stack"))
            continue
        parts = math.ceil(len(jobs) / max_group)
        size, extra = divmod(len(jobs), parts)  # near-equal parts: sizes differ by one at most
        start = 0
        for part in range(parts):
            stop = start + size + (part < extra)
            plan.groups.append(jobs[start:stop])
            start = stop
    return plan


def _difference(key: tuple, other: tuple) -> str:
    for name, mine, theirs in zip(KEY, key, other):
        if mine != theirs:
            return f"{name} differs"
    return "no other job to stack it with"


class StackedGroup:
    """N jobs as one stacked model, optimizer, loss and data; `jobs[r]` is the job number in stack row r."""

    def __init__(self, exps: Sequence, states: Sequence | None = None):
        plan = plan_groups(exps, max_group=len(exps), states=states)
        if len(exps) > 1 and plan.alone or len(plan.groups) > 1:
            reasons = "; ".join(f"job {i}: {why}" for i, why in sorted(plan.alone.items()))
            raise ValueError(f"these jobs cannot form one stack: {reasons or 'they fall into several groups'}")
        if len(exps) == 1 and job_problem(exps[0]):
            raise ValueError(f"this job cannot be stacked: {job_problem(exps[0])}")
        self.exps = list(exps)
        self.jobs = list(range(len(exps)))
        self.job_params = [list(e.model.parameters()) for e in exps]  # each job's own, in optimizer order
        self.device = exps[0].device
        self.trainable = exps[0].trainable  # unlabelled data: looked at, never trained
        self.model = StackedMLP([e.model for e in exps])
        self.optimizer = (
            stack_optimizer([e.optimizer for e in exps], self.model.params, self.model.shapes)
            if self.trainable
            else None
        )
        self.loss = StackedLoss(exps[0].loss) if self.trainable else None
        self.batches = StackedBatches([e.batches for e in exps], flatten=self.model.flatten)
        flat = self.model.flatten
        data = [e.data for e in exps]
        self.x_val = Rows([d.x_val for d in data], flat)  # (n_val, F) or (N, n_val, F)
        self.x_train = self.batches.x  # the training inputs, once
        self.y_val = self.labels_val = self.labels_train = None
        if self.trainable:
            self.y_val = Rows([e.y_val for e in exps])
            self.labels_val = Rows([d.y_val for d in data])
            self.labels_train = Rows([d.y_train for d in data])

    @property
    def size(self) -> int:
        return len(self.jobs)

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One optimizer step of every job on its batch; returns the (N,) losses before the step, detached."""
        loss, optimizer = self.loss, self.optimizer
        if loss is None or optimizer is None:  # unlabelled data: the stack is looked at, never trained
            raise RuntimeError("A stack of jobs on unlabelled data takes no step.")
        model = self.model
        model.zero_grad()
        if model.rules is None:  # an activation whose gradient is autograd's to know
            losses = loss(model.forward(x), y)  # (N,)
            losses.sum().backward()  # d(sum)/d(loss_i) = 1: each job's own
        else:  # autograd for the loss alone, the network's gradients by hand
            out, tape = model.taped(x)
            losses = loss(out.requires_grad_(), y)
            (grad,) = torch.autograd.grad(losses.sum(), out)
            model.backward(tape, grad)
        optimizer.step()
        return losses.detach()

    def evaluate(self, chunk: int = 8192) -> tuple[list[str], Tensor]:
        """Validation loss / accuracy and training accuracy of every job: the single run's rule (`build.evaluate`)
        on the stack's (N, ...) outputs.

        Returns the metric names and a (metrics, N) device tensor: the caller reads it back once for the group.
        """
        y_val, labels_val, labels_train = self.y_val, self.labels_val, self.labels_train
        if y_val is None or labels_val is None or labels_train is None:
            raise RuntimeError("A stack of jobs on unlabelled data has nothing to evaluate.")
        values = evaluate(
            lambda x: self._outputs(x, chunk),  # (N, n, K)
            self.loss,
            self.x_val,
            y_val.full(),
            labels_val.full(),
            self.x_train,
            labels_train.full(),
        )
        return list(values), torch.stack(list(values.values()))  # (metrics, N)

    def metrics(self) -> list[dict[str, float]]:
        """`evaluate()` read back: one dict per stack row."""
        names, values = self.evaluate()
        table = values.tolist()
        return [{name: table[m][r] for m, name in enumerate(names)} for r in range(self.size)]

    def _outputs(self, x: Rows, chunk: int) -> Tensor:
        return torch.cat([self.model.forward(x.slice(i, i + chunk)) for i in range(0, x.n, chunk)], dim=1)

    def grad_sums(self) -> Tensor:
        """(N,) each job's sum of |gradient| over every parameter: the divergence guard's one fused reduction."""
        return torch.stack([p.grad.abs().flatten(1).sum(1) for p in self.model.params if p.grad is not None]).sum(0)

    # --- one job alone ---------------------------------------------------------------------------------
    def write_back(self, row: int, optimizer: bool = True, grads: bool = True) -> None:
        """Job in stack row `row` -> its own model (parameters, last gradients) and torch optimizer (state)."""
        self.model.write_back(row, self.job_params[self.jobs[row]], grads=grads)
        if optimizer and self.optimizer is not None:
            self.optimizer.write_back(row)

    def load(self, row: int) -> None:
        """Its own model and torch optimizer -> stack row `row` (a job restored from a checkpoint)."""
        self.model.load(row, self.job_params[self.jobs[row]])
        if self.optimizer is not None:
            self.optimizer.load(row)

    def leave(self, jobs: Sequence[int]) -> Tensor | None:
        """Write these jobs back and drop them from the stack; returns the index of the rows kept (None: none)."""
        rows = [self.jobs.index(j) for j in jobs]
        for r in rows:
            self.write_back(r)
        keep = [r for r in range(self.size) if r not in rows]
        if not keep:
            self.jobs = []
            return None
        index = torch.tensor(keep, device=self.device)
        self.model.select(index)
        if self.optimizer is not None:
            self.optimizer.select(keep, index, self.model.params)
        self.batches.select(keep, index)
        for split in (self.x_val, self.y_val, self.labels_val, self.labels_train):
            if split is not None:
                split.select(index)
        self.jobs = [self.jobs[r] for r in keep]
        return index

    @property
    def nbytes(self) -> int:
        """Bytes the stack holds: parameters, their gradients and optimizer state, and the data not shared."""
        params = sum(p.numel() * p.element_size() for p in self.model.params)
        state = (
            sum(t.numel() * t.element_size() for ts in self.optimizer.state.values() for t in ts)
            if self.optimizer is not None
            else 0
        )
        splits = (self.batches.x, self.batches.y, self.x_val, self.y_val, self.labels_val, self.labels_train)
        data = sum(r.nbytes for r in splits if r is not None and not r.shared)
        return 2 * params + state + data
