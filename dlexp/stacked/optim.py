"""One batched optimizer update for N jobs, each with its own hyper-parameters, as torch.optim computes it.

`torch.optim` takes one learning rate per parameter tensor, so N jobs stacked into (N, out, in) tensors need an
update of their own. Each class below follows torch.optim's single-tensor (CPU) code operation for operation
(`_single_tensor_sgd`, `_single_tensor_adam`, ...). A hyper-parameter every job shares stays a Python number, so
the kernels are torch.optim's very calls; one that differs becomes an (N, 1, 1) float32 tensor holding the
number each job's kernel would have rounded its scalar to, used through the tensor form of the same fused
operation (`add(b, alpha=s)` -> `addcmul(a, b, s)`, which rounds alike). Derived numbers (bias corrections,
1 - lr * wd) are computed per job in Python floats, in torch.optim's order.

Hyper-parameters are read from each job's own torch optimizer (`param_groups[0]`): its own scheduler moves
them, and `refresh()` reads them again (the loop calls it after stepping the schedulers). Job i's state is
exported in its optimizer's own `state_dict()` format, so a checkpoint of the job is a single run's checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Coef = float | Tensor  # a Python number shared by all jobs, or (N, 1, 1) float32: one per job


def coef(values: Sequence[float], device: torch.device) -> Coef:
    """The shared Python number, or one float32 number per job as an (N, 1, 1) tensor."""
    first = values[0]
    if values.count(first) == len(values):
        return float(first)
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)  # (N, 1, 1)


# The tensor forms below round exactly as torch's scalar forms (checked in tests/test_stacked_optim.py).
def axpy(a: Tensor, b: Tensor, s: Coef) -> Tensor:
    """a + s * b, as `a.add(b, alpha=s)`."""
    return a.add(b, alpha=s) if isinstance(s, float) else torch.addcmul(a, b, s)


def axpy_(a: Tensor, b: Tensor, s: Coef) -> Tensor:
    return a.add_(b, alpha=s) if isinstance(s, float) else a.addcmul_(b, s)


def addcmul_(a: Tensor, b: Tensor, c: Tensor, s: Coef) -> Tensor:
    """a += s * b * c, as `a.addcmul_(b, c, value=s)`."""
    return a.addcmul_(b, c, value=s) if isinstance(s, float) else a.addcmul_(b * s, c)


def addcdiv_(a: Tensor, b: Tensor, c: Tensor, s: Coef) -> Tensor:
    """a += s * b / c, as `a.addcdiv_(b, c, value=s)`."""
    return a.addcdiv_(b, c, value=s) if isinstance(s, float) else a.addcdiv_(b * s, c)


class StackedOptimizer:
    """The state of N jobs' torch optimizers as stacked tensors, updated in one batched step.

    `optimizers[r]` is the torch optimizer of the job in stack row r; `params` are the stacked parameters,
    parallel to each optimizer's own parameter list (`shapes`: one job's shape of each).
    """

    STATE: tuple[str, ...] = ()  # torch's names of the per-parameter state tensors
    HAS_STEP = False  # torch keeps a "step" count per parameter

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer], params: list[Tensor], shapes: list[torch.Size]):
        self.optimizers = list(optimizers)
        self.params, self.shapes = params, shapes
        self.device = params[0].device
        self.state: dict[str, list[Tensor]] = {
            name: [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in params] for name in self.STATE
        }  # (N, ...) each
        self.steps = [0] * len(self.optimizers)  # per job: updates taken
        self.refresh()
        for row in range(len(self.optimizers)):
            self.load(row)

    @property
    def groups(self) -> list[dict]:
        return [o.param_groups[0] for o in self.optimizers]

    def column(self, key: str, rows: Sequence[int] | None = None) -> list:
        groups = self.groups
        return [g[key] for g in groups] if rows is None else [groups[r][key] for r in rows]

    def refresh(self) -> None:
        """Read the hyper-parameters again from the jobs' optimizers (after their schedulers stepped)."""
        self.static = self.hyper(None)

    def hyper(self, rows: Sequence[int] | None) -> dict:
        """The coefficients that do not change from step to step, for these rows (None: all)."""
        return {}

    def step(self, rows: Sequence[int] | None = None) -> None:
        """One update of every job (or of the stack rows `rows`) from the stacked parameters' .grad."""
        with torch.no_grad():
            if rows is None:
                self.update(self.params, gradients(self.params), self.state, self.static, None)
                self.steps = [s + 1 for s in self.steps]
                return
            index = torch.tensor(rows, device=self.device)
            params = [p.index_select(0, index) for p in self.params]  # (n, ...): copies of those rows
            grads = [g.index_select(0, index) for g in gradients(self.params)]
            state = {k: [t.index_select(0, index) for t in ts] for k, ts in self.state.items()}
            self.update(params, grads, state, self.hyper(rows), rows)
            for p, sub in zip(self.params, params):
                p.index_copy_(0, index, sub)
            for k, ts in self.state.items():
                for t, sub in zip(ts, state[k]):
                    t.index_copy_(0, index, sub)
            for r in rows:
                self.steps[r] += 1

    def update(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        state: dict[str, list[Tensor]],
        hp: dict,
        rows: Sequence[int] | None,
    ) -> None:
        raise NotImplementedError

    def rows_steps(self, rows: Sequence[int] | None) -> list[int]:
        """The step number each of these rows takes now (torch increments before it computes)."""
        return [s + 1 for s in self.steps] if rows is None else [self.steps[r] + 1 for r in rows]

    # --- one job's state, in its torch optimizer's own format ------------------------------------------
    def param_state(self, row: int, k: int) -> dict | None:
        """Job `row`'s torch state for its parameter number k (None: torch has none yet)."""
        if self.HAS_STEP and self.steps[row] == 0:
            return None
        found = {"step": torch.tensor(float(self.steps[row]))} if self.HAS_STEP else {}
        for name in self.STATE:
            found[name] = self.state[name][k][row].view(self.shapes[k]).clone()
        return found

    def export(self, row: int) -> dict:
        """Job `row`'s state dict, loadable by `optimizers[row].load_state_dict`."""
        sd = self.optimizers[row].state_dict()
        entries = {k: self.param_state(row, k) for k in range(len(self.params))}
        sd["state"] = {k: v for k, v in entries.items() if v is not None}
        return sd

    def write_back(self, row: int) -> None:
        """Job `row`'s state into its torch optimizer: what `load_state_dict(export(row))` leaves there, without
        its deep copies (the hyper-parameters there are already the job's own)."""
        opt = self.optimizers[row]
        for k, p in enumerate(opt.param_groups[0]["params"]):
            found = self.param_state(row, k)
            if found is None:
                opt.state.pop(p, None)
            else:
                opt.state[p] = found

    def load(self, row: int) -> None:
        """Read job `row`'s state from its torch optimizer (empty state: a fresh start)."""
        opt = self.optimizers[row]
        own = opt.param_groups[0]["params"]
        with torch.no_grad():
            for k, p in enumerate(own):
                found = opt.state.get(p, {})
                if self.HAS_STEP:
                    self.steps[row] = int(found["step"]) if "step" in found else 0
                for name in self.STATE:
                    target = self.state[name][k][row]
                    if found.get(name) is not None:
                        target.copy_(found[name].view(target.shape))
                    else:
                        target.fill_(self.initial(name, row))
        self.loaded(row, opt)

    def initial(self, name: str, row: int) -> float:
        """The value torch would start state `name` at."""
        return 0.0

    def loaded(self, row: int, opt: torch.optim.Optimizer) -> None:
        """Per-job facts beyond tensors (a momentum buffer that does not exist yet)."""

    def select(self, keep: list[int], index: Tensor, params: list[Tensor]) -> None:
        """Keep the stack rows `keep` (also as the long tensor `index`) and adopt the new stacked parameters."""
        self.optimizers = [self.optimizers[r] for r in keep]
        self.steps = [self.steps[r] for r in keep]
        self.params = params
        self.state = {k: [t.index_select(0, index) for t in ts] for k, ts in self.state.items()}
        self.refresh()


class StackedSGD(StackedOptimizer):
    """torch.optim.SGD: plain, momentum, Nesterov, dampening, weight decay (`_single_tensor_sgd`), mixed in one stack:
    rows without momentum take the plain step, rows with Nesterov the look-ahead one, each selected row by row."""

    def __init__(self, optimizers, params, shapes):
        groups = [o.param_groups[0] for o in optimizers]
        self.momentum_rows = [g["momentum"] != 0 for g in groups]  # torch keeps a buffer only for these
        self.nesterov_rows = [bool(g["nesterov"]) for g in groups]
        self.momentum_on = any(self.momentum_rows)
        self.STATE = ("momentum_buffer",) if self.momentum_on else ()
        self.fresh = [True] * len(optimizers)  # per job: no momentum buffer yet (torch creates it at step 1)
        super().__init__(optimizers, params, shapes)

    def hyper(self, rows):
        d = self.device
        wd = self.column("weight_decay", rows)
        pick = (lambda flags: flags) if rows is None else (lambda flags: [flags[r] for r in rows])
        return {
            "neg_lr": coef([-lr for lr in self.column("lr", rows)], d),
            "decay": any(w != 0 for w in wd),
            "wd": coef(wd, d),
            "momentum": coef(self.column("momentum", rows), d),
            "keep": coef([1 - x for x in self.column("dampening", rows)], d),
            "with_momentum": _rows_mask(pick(self.momentum_rows), d),
            "nesterov": _rows_mask(pick(self.nesterov_rows), d),
        }

    def update(self, params, grads, state, hp, rows):
        fresh = self.fresh if rows is None else [self.fresh[r] for r in rows]
        for k, (p, grad) in enumerate(zip(params, grads)):
            if hp["decay"]:
                grad = axpy(grad, p, hp["wd"])
            if self.momentum_on:
                buf = state["momentum_buffer"][k]  # (n, ...)
                if all(fresh):
                    buf.copy_(grad)  # torch: buf = grad.clone()
                else:
                    axpy_(buf.mul_(hp["momentum"]), grad, hp["keep"])
                    if any(fresh):
                        mask = torch.tensor(fresh, device=self.device).view(-1, *[1] * (buf.dim() - 1))
                        buf.copy_(torch.where(mask, grad, buf))
                step = select(hp["nesterov"], lambda: axpy(grad, buf, hp["momentum"]), lambda: buf)
                grad = select(hp["with_momentum"], lambda: step, lambda: grad)
            axpy_(p, grad, hp["neg_lr"])
        if self.momentum_on:
            for r in range(len(self.fresh)) if rows is None else rows:
                self.fresh[r] = False

    def param_state(self, row, k):
        if not self.momentum_rows[row] or self.fresh[row]:
            return None
        return {"momentum_buffer": self.state["momentum_buffer"][k][row].view(self.shapes[k]).clone()}

    def loaded(self, row, opt):
        if self.momentum_on:
            first = opt.state.get(opt.param_groups[0]["params"][0], {})
            self.fresh[row] = first.get("momentum_buffer") is None

    def select(self, keep, index, params):
        self.fresh = [self.fresh[r] for r in keep]
        self.momentum_rows = [self.momentum_rows[r] for r in keep]
        self.nesterov_rows = [self.nesterov_rows[r] for r in keep]
        super().select(keep, index, params)


def _rows_mask(flags: Sequence[bool], device) -> bool | Tensor:
    """True / False when every row agrees, else an (n, 1, 1) bool tensor: which rows take the first form."""
    if all(flags) or not any(flags):
        return bool(flags[0])
    return torch.tensor(flags, device=device).view(-1, 1, 1)


def select(mask: bool | Tensor, first, second) -> Tensor:
    """Row by row, `first()` where the mask holds and `second()` elsewhere; only the form needed is computed
    when every row agrees. torch.where copies each row's own numbers: the update stays bit for bit."""
    if isinstance(mask, bool):
        return first() if mask else second()
    a, b = first(), second()
    return torch.where(mask.view(-1, *[1] * (a.dim() - 1)), a, b)


class StackedAdam(StackedOptimizer):
    """torch.optim.Adam and AdamW (decoupled weight decay) in one stack, amsgrad too (`_single_tensor_adam`)."""

    HAS_STEP = True

    def __init__(self, optimizers, params, shapes):
        group = optimizers[0].param_groups[0]
        self.amsgrad = bool(group["amsgrad"])
        self.decoupled_rows = [_decoupled(o) for o in optimizers]
        self.STATE = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())
        super().__init__(optimizers, params, shapes)

    def hyper(self, rows):
        d = self.device
        lr, wd = self.column("lr", rows), self.column("weight_decay", rows)
        decoupled = self.decoupled_rows if rows is None else [self.decoupled_rows[r] for r in rows]
        betas = self.column("betas", rows)
        b1, b2 = [float(b[0]) for b in betas], [float(b[1]) for b in betas]
        # AdamW shrinks the weights (p *= 1 - lr * wd), Adam adds wd * p to the gradient: each row one of the two,
        # the other's coefficient the identity (x 1.0, + 0 * p)
        return {
            "lr": lr,
            "b1": b1,
            "b2": b2,
            "decay": any(w != 0 for w in wd),
            "coupled": not all(decoupled),
            "decoupled": any(decoupled),
            "wd": coef([0.0 if dec else w for w, dec in zip(wd, decoupled)], d),
            "shrink": coef([1 - a * w if dec else 1.0 for a, w, dec in zip(lr, wd, decoupled)], d),
            "one_minus_b1": coef([1 - b for b in b1], d),
            "b2c": coef(b2, d),
            "one_minus_b2": coef([1 - b for b in b2], d),
            "eps": coef(self.column("eps", rows), d),
        }

    def update(self, params, grads, state, hp, rows):
        d = self.device
        steps = self.rows_steps(rows)
        if (
            steps.count(steps[0]) == len(steps)
            and hp["b1"].count(hp["b1"][0]) == len(steps)
            and hp["b2"].count(hp["b2"][0]) == len(steps)
        ):
            step = float(steps[0])  # one bias correction for all: torch's own Python arithmetic
            bc1, bc2 = 1 - hp["b1"][0] ** step, 1 - hp["b2"][0] ** step
            neg_step = coef([-(lr / bc1) for lr in hp["lr"]], d)
            bc2_sqrt = bc2**0.5
        else:
            bc1s = [1 - b ** float(s) for b, s in zip(hp["b1"], steps)]
            neg_step = coef([-(lr / bc) for lr, bc in zip(hp["lr"], bc1s)], d)
            bc2_sqrt = coef([(1 - b ** float(s)) ** 0.5 for b, s in zip(hp["b2"], steps)], d)
        for k, (p, grad) in enumerate(zip(params, grads)):
            exp_avg, exp_avg_sq = state["exp_avg"][k], state["exp_avg_sq"][k]  # (n, ...)
            if hp["decay"]:
                if hp["decoupled"]:
                    p.mul_(hp["shrink"])
                if hp["coupled"]:
                    grad = axpy(grad, p, hp["wd"])
            exp_avg.lerp_(grad, hp["one_minus_b1"])
            addcmul_(exp_avg_sq.mul_(hp["b2c"]), grad, grad, hp["one_minus_b2"])
            if self.amsgrad:
                top = state["max_exp_avg_sq"][k]
                torch.maximum(top, exp_avg_sq, out=top)
                denom = (top.sqrt() / bc2_sqrt).add_(hp["eps"])
            else:
                denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(hp["eps"])
            addcdiv_(p, exp_avg, denom, neg_step)

    def select(self, keep, index, params):
        self.decoupled_rows = [self.decoupled_rows[r] for r in keep]
        super().select(keep, index, params)


def _decoupled(opt: torch.optim.Optimizer) -> bool:
    return bool(opt.param_groups[0].get("decoupled_weight_decay", False)) or isinstance(opt, torch.optim.AdamW)


class StackedAdagrad(StackedOptimizer):
    """torch.optim.Adagrad with lr_decay and weight decay (`_single_tensor_adagrad`)."""

    HAS_STEP = True
    STATE = ("sum",)

    def hyper(self, rows):
        d = self.device
        wd = self.column("weight_decay", rows)
        return {
            "lr": self.column("lr", rows),
            "lr_decay": self.column("lr_decay", rows),
            "decay": any(w != 0 for w in wd),
            "wd": coef(wd, d),
            "eps": coef(self.column("eps", rows), d),
        }

    def update(self, params, grads, state, hp, rows):
        steps = self.rows_steps(rows)
        neg_clr = coef(
            [-(lr / (1 + (s - 1) * dec)) for lr, dec, s in zip(hp["lr"], hp["lr_decay"], steps)], self.device
        )
        for k, (p, grad) in enumerate(zip(params, grads)):
            if hp["decay"]:
                grad = axpy(grad, p, hp["wd"])
            state_sum = state["sum"][k]  # (n, ...)
            state_sum.addcmul_(grad, grad, value=1)
            std = state_sum.sqrt().add_(hp["eps"])
            addcdiv_(p, grad, std, neg_clr)

    def param_state(self, row, k):
        # torch creates Adagrad's state (step 0, sum) when the optimizer is built, not at the first step
        return {
            "step": torch.tensor(float(self.steps[row])),
            "sum": self.state["sum"][k][row].view(self.shapes[k]).clone(),
        }

    def initial(self, name, row):
        return float(self.optimizers[row].param_groups[0]["initial_accumulator_value"])


class StackedRMSprop(StackedOptimizer):
    """torch.optim.RMSprop, centred or not, with momentum and weight decay (`_single_tensor_rmsprop`)."""

    HAS_STEP = True

    def __init__(self, optimizers, params, shapes):
        group = optimizers[0].param_groups[0]
        self.centered, self.momentum_on = bool(group["centered"]), group["momentum"] > 0
        self.STATE = (
            ("square_avg",)
            + (("momentum_buffer",) if self.momentum_on else ())
            + (("grad_avg",) if self.centered else ())
        )
        super().__init__(optimizers, params, shapes)

    def hyper(self, rows):
        d = self.device
        alpha, wd = self.column("alpha", rows), self.column("weight_decay", rows)
        return {
            "neg_lr": coef([-lr for lr in self.column("lr", rows)], d),
            "alpha": coef(alpha, d),
            "one_minus_alpha": coef([1 - a for a in alpha], d),
            "eps": coef(self.column("eps", rows), d),
            "decay": any(w != 0 for w in wd),
            "wd": coef(wd, d),
            "momentum": coef(self.column("momentum", rows), d),
        }

    def update(self, params, grads, state, hp, rows):
        for k, (p, grad) in enumerate(zip(params, grads)):
            if hp["decay"]:
                grad = axpy(grad, p, hp["wd"])
            square_avg = state["square_avg"][k]  # (n, ...)
            addcmul_(square_avg.mul_(hp["alpha"]), grad, grad, hp["one_minus_alpha"])
            if self.centered:
                grad_avg = state["grad_avg"][k]
                grad_avg.lerp_(grad, hp["one_minus_alpha"])
                avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
            else:
                avg = square_avg.sqrt()
            avg = avg.add_(hp["eps"])
            if self.momentum_on:
                buf = state["momentum_buffer"][k]
                buf.mul_(hp["momentum"]).addcdiv_(grad, avg)
                axpy_(p, buf, hp["neg_lr"])
            else:
                addcdiv_(p, grad, avg, hp["neg_lr"])


class StackedAdamThenSGD:
    """dlexp.parts.optim.AdamThenSGD: per job, Adam until its own switch step, then SGD.

    Like the original, the inner Adam and SGD hold their own state. The switch is the original's own rule, asked of
    each job's optimizer (`phase`, `next_inner`, `stepped`), which also counts its steps; the inner lrs are set
    again only when a scheduler moved the outer ones or a job switched.
    """

    def __init__(self, optimizers, params, shapes):
        self.optimizers = list(optimizers)
        self.adam = StackedAdam([o.adam for o in optimizers], params, shapes)
        self.sgd = StackedSGD([o.sgd for o in optimizers], params, shapes)
        self.synced = False  # inner lrs hold the outer lrs of the next step

    @property
    def params(self) -> list[Tensor]:
        return self.adam.params

    @property
    def state(self) -> dict[str, list[Tensor]]:
        """Both inner optimizers' stacked state, by name."""
        return {
            **{f"adam.{k}": v for k, v in self.adam.state.items()},
            **{f"sgd.{k}": v for k, v in self.sgd.state.items()},
        }

    def refresh(self) -> None:
        self.synced = False

    def step(self) -> None:
        if not self.synced:
            for opt in self.optimizers:
                opt.next_inner()
            self.adam.refresh()
            self.sgd.refresh()
            self.synced = True
        phases = [opt.phase for opt in self.optimizers]  # 0: Adam, 1: SGD
        if not any(phases):
            self.adam.step()
        elif all(phases):
            self.sgd.step()
        else:
            self.adam.step([r for r, ph in enumerate(phases) if not ph])
            self.sgd.step([r for r, ph in enumerate(phases) if ph])
        for opt in self.optimizers:
            if opt.stepped():
                self.synced = False

    def export(self, row: int) -> dict:
        sd = self.optimizers[row].state_dict()
        sd["adam"], sd["sgd"] = self.adam.export(row), self.sgd.export(row)
        return sd

    def write_back(self, row: int) -> None:
        self.adam.write_back(row)
        self.sgd.write_back(row)

    def load(self, row: int) -> None:
        self.adam.load(row)
        self.sgd.load(row)
        self.synced = False

    def select(self, keep: list[int], index: Tensor, params: list[Tensor]) -> None:
        self.optimizers = [self.optimizers[r] for r in keep]
        self.adam.select(keep, index, params)
        self.sgd.select(keep, index, params)


# torch.optim class -> its stacked update; exact types only (a subclass may change step()).
KINDS: dict[type, type] = {
    torch.optim.SGD: StackedSGD,
    torch.optim.Adam: StackedAdam,
    torch.optim.AdamW: StackedAdam,
    torch.optim.Adagrad: StackedAdagrad,
    torch.optim.RMSprop: StackedRMSprop,
}


def _register_dlexp() -> None:
    from dlexp.parts.optim import AdamThenSGD

    KINDS[AdamThenSGD] = StackedAdamThenSGD


_register_dlexp()

# Options whose arithmetic or semantics the stacked updates do not reproduce; each must be off.
UNSUPPORTED_OPTIONS = ("maximize", "foreach", "fused", "capturable", "differentiable")


def gradients(params: Sequence[Tensor]) -> list[Tensor]:
    """Every stacked parameter's .grad, which backward() set before the step."""
    found = []
    for p in params:
        if p.grad is None:
            raise RuntimeError("A stacked parameter has no gradient: the step came before backward().")
        found.append(p.grad)
    return found


def optimizer_problem(opt: torch.optim.Optimizer, model_params: list[Tensor]) -> str | None:
    """Why this job's optimizer cannot join a stack, or None."""
    from dlexp.parts.optim import AdamThenSGD

    kind = KINDS.get(type(opt))
    if kind is None:
        return f"optimizer {snake(type(opt).__name__)} cannot be stacked"
    if len(opt.param_groups) != 1:
        return "an optimizer with several parameter groups cannot be stacked"
    group = opt.param_groups[0]
    if [id(p) for p in group["params"]] != [id(p) for p in model_params]:
        return "an optimizer that does not hold exactly the model's parameters cannot be stacked"
    inner = [opt.adam.param_groups[0], opt.sgd.param_groups[0]] if isinstance(opt, AdamThenSGD) else []
    for g in [group, *inner]:
        for name in UNSUPPORTED_OPTIONS:
            if g.get(name):
                return f"optimizer option {name}={g[name]} cannot be stacked"
        for key, value in g.items():
            values = value if isinstance(value, (tuple, list)) and key != "params" else [value]
            if key != "params" and any(isinstance(v, Tensor) for v in values):
                return f"a tensor {key} cannot be stacked"
    return None


def optimizer_kind(opt: torch.optim.Optimizer) -> tuple:
    """What jobs must share to take the same batched update: the family and its structural switches."""
    g = opt.param_groups[0]
    if isinstance(opt, torch.optim.SGD):  # plain, momentum and Nesterov: one family
        return ("sgd",)
    if isinstance(opt, torch.optim.Adam):  # Adam and AdamW: one family
        return "adam", bool(g["amsgrad"])
    if isinstance(opt, torch.optim.RMSprop):
        return "rmsprop", bool(g["centered"]), g["momentum"] > 0
    return (snake(type(opt).__name__),)


def stack_optimizer(optimizers: Sequence[torch.optim.Optimizer], params: list[Tensor], shapes: list[torch.Size]):
    """The batched update of these jobs' optimizers (one kind, checked by the grouping) over `params`."""
    return KINDS[type(optimizers[0])](optimizers, params, shapes)


def snake(name: str) -> str:
    """RandomSearch -> random_search, AdamThenSGD -> adam_then_sgd, AdamW -> adamw: as dlexp's options read."""
    out = ""
    for i, ch in enumerate(name):
        if ch.isupper() and 0 < i < len(name) - 1 and name[i - 1].islower():
            out += "_"
        out += ch.lower()
    return out
