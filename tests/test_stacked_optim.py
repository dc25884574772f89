"""The stacked optimizer update against torch.optim, bit for bit: the same gradients in, the same numbers out.

Each case stacks 2-3 jobs whose optimizers differ in their hyper-parameters, feeds every job and its stack row
the same random gradients for 12 steps (halving every learning rate after step 6, as a scheduler would), and
compares parameters and the exported state (`state_dict()` format) with `torch.equal`.
"""

from __future__ import annotations

import pytest
import torch
from tolerance import assert_same_state
from torch import nn

from dlexp.parts.optim import AdamThenSGD
from dlexp.stacked.model import StackedMLP
from dlexp.stacked.optim import addcdiv_, addcmul_, axpy, coef, stack_optimizer

CASES = {
    "sgd": [dict(lr=0.1), dict(lr=0.03, weight_decay=0.01), dict(lr=0.2)],
    "sgd_shared": [dict(lr=0.1)] * 3,
    "momentum": [
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.03, momentum=0.5, dampening=0.1, weight_decay=1e-3),
        dict(lr=0.01, momentum=0.99),
    ],
    "nesterov": [
        dict(lr=0.1, momentum=0.9, nesterov=True),
        dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.1),
    ],
    "adagrad": [dict(lr=0.01), dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, eps=1e-6, weight_decay=0.01)],
    "rmsprop": [dict(lr=0.01), dict(lr=0.001, alpha=0.9, eps=1e-6, weight_decay=0.01)],
    "rmsprop_centered_momentum": [
        dict(lr=0.01, centered=True, momentum=0.9),
        dict(lr=0.001, alpha=0.9, centered=True, momentum=0.5),
    ],
    "adam": [dict(lr=1e-3), dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01), dict(lr=1e-2)],
    "adam_shared": [dict(lr=1e-3)] * 3,
    "adam_amsgrad": [dict(lr=1e-3, amsgrad=True), dict(lr=3e-3, betas=(0.8, 0.99), amsgrad=True)],
    "adamw": [dict(lr=1e-3), dict(lr=3e-3, weight_decay=0.1), dict(lr=1e-2, weight_decay=0.0)],
    "adam_then_sgd": [
        dict(steps_per_epoch=2, switch_epoch=2),
        dict(steps_per_epoch=2, switch_epoch=3, adam_lr=0.01, sgd_lr=0.05, weight_decay=0.01),
        dict(steps_per_epoch=2, switch_epoch=0, sgd_lr=0.2),
    ],
    "adam_then_sgd_nesterov": [
        dict(steps_per_epoch=2, switch_epoch=2, momentum=0.9, nesterov=True),
        dict(steps_per_epoch=3, switch_epoch=1, adam_lr=0.01, momentum=0.5, nesterov=True),
    ],
    # one family in one stack: optimizer=sgd, momentum, nesterov; optimizer=adam, adamw (cls: the job's own class)
    "sgd_family": [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.01),
        dict(lr=0.03, momentum=0.5, dampening=0.2),
    ],
    "adam_family": [
        dict(lr=1e-3),
        dict(cls=torch.optim.AdamW, lr=3e-3, weight_decay=0.1),
        dict(lr=1e-2, weight_decay=0.01),
        dict(cls=torch.optim.AdamW, lr=1e-3),
    ],
    "adam_then_sgd_mixed": [
        dict(steps_per_epoch=2, switch_epoch=1),
        dict(steps_per_epoch=2, switch_epoch=1, momentum=0.9, nesterov=True),
    ],
}
CLASSES = {
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "nesterov": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adam_then_sgd": AdamThenSGD,
}


def _class(case: str):
    return next(cls for name, cls in sorted(CLASSES.items(), key=lambda kv: -len(kv[0])) if case.startswith(name))


def _optimizers(case: str, models) -> list:
    """Each job's torch optimizer: the case's class, or the job's own (`cls`)."""
    found = []
    for model, settings in zip(models, CASES[case]):
        settings = dict(settings)
        found.append(settings.pop("cls", _class(case))(model.parameters(), **settings))
    return found


def _models(n: int) -> list[nn.Sequential]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 2)))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_update_and_state_equal_torch_optim_bit_for_bit(case):
    settings = CASES[case]
    alone = _models(len(settings))
    alone_opts = _optimizers(case, alone)
    jobs = _models(len(settings))
    job_opts = _optimizers(case, jobs)
    stack = StackedMLP(jobs)
    update = stack_optimizer(job_opts, stack.params, stack.shapes)
    g = torch.Generator().manual_seed(5)
    for step in range(12):
        grads = [[torch.randn(p.shape, generator=g) for p in m.parameters()] for m in alone]
        for model, opt, gs in zip(alone, alone_opts, grads):
            for p, grad in zip(model.parameters(), gs):
                p.grad = grad.clone()
            opt.step()
        for k, p in enumerate(stack.params):
            p.grad = torch.stack([gs[k] for gs in grads]).view(p.shape)  # (N, ...)
        update.step()
        if step == 5:  # a scheduler moves every job's lr; the stack reads them again
            for opt in alone_opts + job_opts:
                opt.param_groups[0]["lr"] *= 0.5
            update.refresh()
    for row, (model, opt) in enumerate(zip(alone, alone_opts)):
        for k, p in enumerate(model.parameters()):
            assert torch.equal(stack.params[k][row].view(p.shape), p), (case, row, k)
        assert_same_state(opt.state_dict(), update.export(row), f"{case} job {row}", exact=True)


@pytest.mark.parametrize(
    "case", ["momentum", "adam", "adagrad", "rmsprop_centered_momentum", "adam_then_sgd", "sgd_family", "adam_family"]
)
def test_exported_state_loads_into_fresh_jobs_that_continue_alike(case):
    """export -> fresh job models and optimizers (load_state_dict) -> a new stack built from them continues
    bit for bit as the first one (the steps cross a switch of Adam then SGD)."""
    settings = CASES[case]
    models = _models(len(settings))
    stack = StackedMLP(models)
    update = stack_optimizer(_optimizers(case, models), stack.params, stack.shapes)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        for p in stack.params:
            p.grad = torch.randn(p.shape, generator=g)
        update.step()
    fresh = _models(len(settings))
    fresh_opts = _optimizers(case, fresh)
    for row, (model, opt) in enumerate(zip(fresh, fresh_opts)):
        stack.write_back(row, list(model.parameters()))
        opt.load_state_dict(update.export(row))
    again = StackedMLP(fresh)
    reread = stack_optimizer(fresh_opts, again.params, again.shapes)
    for row in range(len(settings)):
        assert_same_state(update.export(row), reread.export(row), f"{case} job {row}", exact=True)
    for _ in range(3):
        for p, q in zip(stack.params, again.params):
            grad = torch.randn(p.shape, generator=g)
            p.grad, q.grad = grad, grad.clone()
        update.step()
        reread.step()
    for p, q in zip(stack.params, again.params):
        assert torch.equal(p, q)
    for row in range(len(settings)):
        assert_same_state(update.export(row), reread.export(row), f"{case} job {row}", exact=True)


def test_a_job_leaving_the_stack_leaves_the_others_numbers_unchanged():
    settings = CASES["adam"]
    alone = _models(3)
    alone_opts = [torch.optim.Adam(m.parameters(), **kw) for m, kw in zip(alone, settings)]
    jobs = _models(3)
    stack = StackedMLP(jobs)
    update = stack_optimizer(
        [torch.optim.Adam(m.parameters(), **kw) for m, kw in zip(jobs, settings)], stack.params, stack.shapes
    )
    g = torch.Generator().manual_seed(2)
    rows = [0, 1, 2]
    for step in range(8):
        grads = [[torch.randn(p.shape, generator=g) for p in m.parameters()] for m in alone]
        for model, opt, gs in zip(alone, alone_opts, grads):
            for p, grad in zip(model.parameters(), gs):
                p.grad = grad
            opt.step()
        for k, p in enumerate(stack.params):
            p.grad = torch.stack([grads[r][k] for r in rows]).view(p.shape)
        update.step()
        if step == 3:  # job 1 leaves
            keep = [0, 2]
            index = torch.tensor(keep)
            stack.select(index)
            update.select(keep, index, stack.params)
            rows = [rows[r] for r in keep]
    for row, job in enumerate(rows):
        for k, p in enumerate(alone[job].parameters()):
            assert torch.equal(stack.params[k][row].view(p.shape), p)


# --- the tensor forms of torch's fused scalar operations round alike ---------------------------------------
@pytest.mark.parametrize("size", [1, 3, 7, 33, 1003])
def test_tensor_coefficients_round_as_torch_scalars(size):
    g = torch.Generator().manual_seed(size)
    values = [0.1, 0.3, 0.01, 1.7, 0.999]
    s = coef(values, torch.device("cpu"))  # (N, 1, 1)
    assert isinstance(s, torch.Tensor) and s.shape == (5, 1, 1)
    a, b, c = (torch.randn(5, 1, size, generator=g) for _ in range(3))
    c = c.abs() + 0.1
    for i, v in enumerate(values):
        assert torch.equal(axpy(a, b, s)[i], a[i].add(b[i], alpha=v))
        assert torch.equal(addcmul_(a.clone(), b, c, s)[i], a[i].addcmul(b[i], c[i], value=v))
        assert torch.equal(addcdiv_(a.clone(), b, c, s)[i], a[i].addcdiv(b[i], c[i], value=v))
        assert torch.equal(a.lerp(b, s)[i], a[i].lerp(b[i], v))
    assert coef([0.5, 0.5, 0.5], torch.device("cpu")) == 0.5  # shared: torch's own scalar path
