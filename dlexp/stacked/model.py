"""N copies of one flat MLP as stacked weights: (N, out, in) matrices, batched matrix products.

Every tensor here carries the model axis N first: job i's Linear weight (out, in) is `weights[k][i]`, its bias
(out,) is `biases[k][i, 0]`. Activations are the first model's own modules applied to the whole stack: they act
on each number alone and hold nothing of their own, so the job axis changes nothing. An activation with parameters
(nn.PReLU: each job its own slope) would apply job 0's to every job: `architecture` refuses it, and such a job runs
alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dlexp.parts.models import activation_name


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x @ W^T + b for N jobs at once: (N, B, in), (N, out, in), (N, 1, out) -> (N, B, out)."""
    if weight.shape[1] == 1:
        # One output: MKL computes a single run's x @ w as a matrix-vector product; w @ x^T takes the same
        # path in a batched product, x @ w^T does not. (N, 1, B) -> (N, B, 1), the same memory.
        xt = x.transpose(1, 2)  # (N, in, B) view
        out = torch.baddbmm(bias, weight, xt) if bias is not None else torch.bmm(weight, xt)
        return out.transpose(1, 2)  # (N, B, 1)
    wt = weight.transpose(1, 2)  # (N, in, out) view
    return torch.baddbmm(bias, x, wt) if bias is not None else torch.bmm(x, wt)  # (N, B, out)


def linear_backward(grad: Tensor, x: Tensor, weight: Tensor, needs: tuple[bool, bool, bool]) -> tuple:
    """The gradients of `linear` as nn.Linear's are computed for one job, for the inputs `needs` names:
    (x, weight, bias) -> (N, B, in), (N, out, in), (N, 1, out) or None each. grad: (N, B, out)."""
    gx = torch.bmm(grad, weight) if needs[0] else None
    gw = torch.bmm(grad.transpose(1, 2), x) if needs[1] else None
    gb = grad.sum(1, keepdim=True) if needs[2] else None
    return gx, gw, gb


class StackedLinearFn(torch.autograd.Function):
    """`linear` with the gradients computed as nn.Linear computes them for one job (`linear_backward`).

    Autograd's own rule for `baddbmm` forms the weight gradient as (x^T g)^T; addmm's rule for a contiguous
    weight forms g^T x. The two orders round differently on larger layers, so the rule is written out here.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):  # grad: (N, B, out)
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        return linear_backward(grad, x, weight, (needs[0], needs[1], ctx.has_bias and needs[2]))


Rule = Callable[[Tensor, Tensor, Tensor], Tensor]  # (grad, input, output) -> the input's gradient


def _backward_rule(module: nn.Module) -> Rule | None:
    """(grad, input, output) -> the input's gradient, by the kernel autograd runs for this activation module
    (torch/csrc/autograd/derivatives.yaml, outside create_graph); None for a module not listed (or in place)."""
    if getattr(module, "inplace", False):
        return None
    aten, kind = torch.ops.aten, type(module)
    rules: dict[type, Rule] = {
        nn.Sigmoid: lambda g, x, y: aten.sigmoid_backward(g, y),
        nn.Tanh: lambda g, x, y: aten.tanh_backward(g, y),
        nn.ReLU: lambda g, x, y: aten.threshold_backward(g, y, 0),
        nn.LeakyReLU: lambda g, x, y: aten.leaky_relu_backward(g, x, module.negative_slope, False),
        nn.ELU: lambda g, x, y: aten.elu_backward(g, module.alpha, 1, 1, False, x),
        nn.GELU: lambda g, x, y: aten.gelu_backward(g, x, approximate=module.approximate),
        nn.SiLU: lambda g, x, y: aten.silu_backward(g, x),
        nn.Mish: lambda g, x, y: aten.mish_backward(g, x),
        nn.Identity: lambda g, x, y: g,
    }
    return rules.get(kind)


def architecture(model: nn.Module) -> tuple | str:
    """The layer signature jobs must share to be stacked, or why this model cannot be stacked."""
    if not isinstance(model, nn.Sequential):
        return f"model {type(model).__name__} cannot be stacked (only a flat nn.Sequential can)"
    signature: list = []
    for position, module in enumerate(model):
        if isinstance(module, nn.Linear):
            signature.append(("Linear", module.in_features, module.out_features, module.bias is not None))
        elif activation_name(module) is not None:  # the table as it is now: an activation registered later counts
            if next(module.parameters(), None) is not None or next(module.buffers(), None) is not None:
                return f"activation {activation_name(module)} cannot be stacked: it has parameters of its own"
            signature.append(repr(module))  # "LeakyReLU(negative_slope=0.01)": settings too
        elif isinstance(module, nn.Flatten) and position == 0 and module.start_dim == 1 and module.end_dim == -1:
            signature.append("Flatten")
        else:
            return _module_problem(module)
    if not any(isinstance(m, nn.Linear) for m in model):
        return "a model without Linear layers cannot be stacked"
    for p in model.parameters():
        if p.dtype != torch.float32:
            return f"{p.dtype} parameters cannot be stacked (float32 only)"
        if not p.requires_grad:
            return "frozen parameters cannot be stacked"
    return tuple(signature)


def _module_problem(module: nn.Module) -> str:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool2d)):
        return "model=cnn cannot be stacked"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "batchnorm cannot be stacked"
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return "dropout cannot be stacked"  # its masks come from the global RNG, drawn per job
    return f"{type(module).__name__} layers cannot be stacked"


class StackedMLP:
    """The stacked parameters of N identical-architecture Sequentials, and their batched forward pass."""

    def __init__(self, models: Sequence[nn.Sequential]):
        first = models[0]
        self.flatten = isinstance(first[0], nn.Flatten)
        self.plan: list[int | nn.Module] = []  # int k: Linear number k; a module: applied to the stack
        self.weights: list[Tensor] = []  # (N, out, in) each
        self.biases: list[Tensor | None] = []  # (N, 1, out) each
        self.params: list[Tensor] = []  # in each model's parameters() order: what its optimizer holds
        self.shapes: list[torch.Size] = []  # one job's shape of each of `params`
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        for module in first:
            if isinstance(module, nn.Linear):
                k = len(self.weights)
                self.plan.append(k)
                with torch.no_grad():
                    w = torch.stack([ls[k].weight for ls in linears]).requires_grad_()  # (N, out, in)
                    b = (
                        torch.stack([ls[k].bias for ls in linears]).unsqueeze(1).clone().requires_grad_()  # (N, 1, out)
                        if module.bias is not None
                        else None
                    )
                self.weights.append(w)
                self.biases.append(b)
                self.params += [w] + ([b] if b is not None else [])
                self.shapes += [module.weight.shape] + ([module.bias.shape] if b is not None else [])
            elif not isinstance(module, nn.Flatten):
                self.plan.append(module)
        # every activation's gradient known: the training pass is differentiated by hand (`taped`, `backward`)
        rules = [_backward_rule(m) for m in self.plan if not isinstance(m, int)]
        self.rules: list[Rule] | None = [r for r in rules if r is not None] if None not in rules else None

    @property
    def size(self) -> int:
        """N, the jobs in the stack."""
        return self.weights[0].shape[0]

    def forward(self, x: Tensor) -> Tensor:
        """(N, B, in) -> (N, B, out); inputs already flattened to one feature axis."""
        return self.walk(x)

    def walk(
        self,
        h: Tensor,
        linear: Callable[[int, Tensor], Tensor] | None = None,
        layers: list[tuple[Tensor, Tensor | None]] | None = None,
    ) -> Tensor:
        """The plan applied to h, the one walk every pass of the stack takes: Linear number k by `linear(k, h)`
        (`forward_linear` unless said: the training pass), every other module as it is, on the whole stack
        (elementwise: no hooks, nothing per job). With `layers`, appends per Linear (its output, the activation after
        it or None), as the forward hooks of `Histograms.activations` see them on one job."""
        linear = linear or self.forward_linear
        for step in self.plan:
            if isinstance(step, int):
                h = linear(step, h)
                if layers is not None:
                    layers.append((h, None))
            else:
                pre = h.clone() if layers is not None and getattr(step, "inplace", False) else h
                h = step.forward(h)
                if layers and layers[-1][1] is None:  # the first activation after a Linear
                    layers[-1] = (pre, h)
        return h

    def forward_linear(self, k: int, x: Tensor) -> Tensor:
        """Linear number k alone: (N, B, in_k) -> (N, B, out_k)."""
        return StackedLinearFn.apply(x, self.weights[k], self.biases[k])

    @torch.no_grad()
    def taped(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The training pass without autograd (when `rules`): (N, B, in) -> (N, B, out), and the tape `backward`
        reads: the input of every step of the plan, and the output."""
        tape = [x]
        for step in self.plan:
            x = linear(x, self.weights[step], self.biases[step]) if isinstance(step, int) else step.forward(x)
            tape.append(x)
        return x, tape

    @torch.no_grad()
    def backward(self, tape: list[Tensor], grad: Tensor) -> None:
        """The gradients of the taped pass, given the output's (N, B, out), into every parameter's .grad: the
        kernels autograd runs for `forward`, in its order, without its graph (half the time of a small step)."""
        rules = iter(reversed(self.rules or []))
        for i in range(len(self.plan) - 1, -1, -1):
            step, x = self.plan[i], tape[i]
            if isinstance(step, int):
                w, b = self.weights[step], self.biases[step]
                grad, w.grad, gb = linear_backward(grad, x, w, (i > 0, True, b is not None))
                if b is not None:
                    b.grad = gb
            else:
                grad = next(rules)(grad, x, tape[i + 1])

    def linear_columns(self, k: int, x: Tensor) -> Tensor:
        """Linear number k on points along the LAST axis: (N, in_k, G) -> (N, out_k, G)."""
        w, b = self.weights[k], self.biases[k]  # (N, out, in), (N, 1, out)
        return torch.baddbmm(b.transpose(1, 2), w, x) if b is not None else torch.bmm(w, x)

    def frozen(self) -> StackedMLP:
        """A copy of the stack as it stands now, its parameters cloned and detached: what another thread may walk
        (the pictures' grid passes) while this one trains on."""
        copy = object.__new__(StackedMLP)
        copy.__dict__.update(self.__dict__)
        with torch.no_grad():
            copy.weights = [w.detach().clone() for w in self.weights]
            copy.biases = [None if b is None else b.detach().clone() for b in self.biases]
        copy.params = [p for w, b in zip(copy.weights, copy.biases) for p in (w, b) if p is not None]
        return copy

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    # --- one job's view ---------------------------------------------------------------------------
    @torch.no_grad()
    def write_back(self, row: int, params: Sequence[Tensor], grads: bool = True) -> None:
        """Copy the job in stack row `row` into its own model's `params` (and the last gradients)."""
        for stacked, shape, p in zip(self.params, self.shapes, params):
            p.copy_(stacked[row].view(shape))
            if grads:
                p.grad = None if stacked.grad is None else stacked.grad[row].view(shape).clone()

    @torch.no_grad()
    def load(self, row: int, params: Sequence[Tensor]) -> None:
        """Copy a job's own model `params` into stack row `row`."""
        for stacked, p in zip(self.params, params):
            stacked[row].copy_(p.view(stacked[row].shape))

    def select(self, keep: Tensor) -> None:
        """Keep only the stack rows `keep` (a long tensor), in that order, with their last gradients (a capture at
        the step some jobs leave reads the others')."""
        with torch.no_grad():
            new = {id(p): p.index_select(0, keep).requires_grad_() for p in self.params}
            for p in self.params:
                if p.grad is not None:
                    new[id(p)].grad = p.grad.index_select(0, keep)
        self.weights = [new[id(w)] for w in self.weights]
        self.biases = [None if b is None else new[id(b)] for b in self.biases]
        self.params = [new[id(p)] for p in self.params]
