"""Per-layer histograms (activations, weights, gradients; pre-activations and biases on request) and the numbers
behind them.

A capture happens at the start (step 0: the freshly initialised network), every `hist_every` optimizer
steps and at each evaluated epoch. Everything a capture needs is computed on the device and read back
to the host ONCE, as one flat tensor; the whole capture is then written as a single TensorBoard event
(`Board.summary`). That is what keeps the cost low: `SummaryWriter.add_histogram` copies every tensor to
the host, runs numpy's binning on it and writes one event per tensor.

Activations come from a forward pass on a fixed probe batch with forward hooks that exist only for that
pass (model in eval mode, no autograd), so nothing stays attached to the model between captures.
Gradients are the `.grad` of the last training step; the update/weight ratio compares each weight with a
copy taken just before the step that precedes a capture.

How a capture is written (`_write`, also fed captures computed elsewhere, many models at once):

* TensorBoard shows one card per run and histogram tag, so every kind multiplies the cards a sweep fills Time
  Series with: activations, weights and gradients are always written, the other kinds (`EXTRA`) only on request
  (`log.extra_histograms`). The numbers derived from them (saturation, dead units, a lone bias) are kept either way.
* TensorBoard fits each card's x axis to the data it shows, so sigmoids all at 0.5 ± 0.01 would fill the card like
  a wide bell. The activations of a bounded function (`bounded.RANGES`) are therefore re-binned over its whole output
  range (0..1 for a sigmoid), every bucket written: a needle stays a needle on a 0..1 axis.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dlexp.parts import bounded

BINS = 30  # buckets per histogram over min..max (TensorBoard draws 30; bytes cost CRC time)
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # each starts a numbered layer
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
SINGULAR = {"weights": "weight", "biases": "bias"}  # the scalar tag of a parameter with a single entry
EXTRA = ("preactivations", "biases")  # histogram kinds captured only with log.extra_histograms


def is_activation(module: nn.Module) -> bool:
    """One of the activations a dlexp model offers, or any of PyTorch's own (a user's model may use them)."""
    from dlexp.parts.models import ACTIVATIONS

    return isinstance(module, tuple(ACTIVATIONS.values())) or type(module).__module__ == nn.modules.activation.__name__


@dataclass
class Layer:
    """One Linear/Conv with the norm and activation that follow it in the Sequential."""

    index: int  # 1-based, in forward order
    module: nn.Module  # the Linear / Conv
    norms: list[nn.Module] = field(default_factory=list)
    activation: nn.Module | None = None

    @property
    def name(self) -> str:  # "2_linear": groups well in TensorBoard
        return f"{self.index}_{type(self.module).__name__.lower()}"

    @property
    def act_name(self) -> str:  # "2_sigmoid"
        return f"{self.index}_{bounded.kind(self.activation)}"

    def parameters(self) -> list[tuple[str, str, nn.Parameter]]:
        """(kind, tag name, parameter): weights/biases of the layer and of its norms."""
        found = []
        for module in [self.module, *self.norms]:
            name = f"{self.index}_{type(module).__name__.lower()}"
            for kind, attr in (("weights", "weight"), ("biases", "bias")):
                p = getattr(module, attr, None)
                if isinstance(p, nn.Parameter):
                    found.append((kind, name, p))
        return found


def find_layers(model: nn.Module) -> list[Layer]:
    """Walk the leaf modules in registration (= forward, for a Sequential) order and group them into layers."""
    layers: list[Layer] = []
    for module in model.modules():
        if next(module.children(), None) is not None:
            continue  # containers: their leaves come next
        if isinstance(module, LAYERS):
            layers.append(Layer(len(layers) + 1, module))
        elif layers and isinstance(module, NORMS) and layers[-1].activation is None:
            layers[-1].norms.append(module)
        elif layers and is_activation(module) and layers[-1].activation is None:
            layers[-1].activation = module
    return layers


def histogram_stats(x: Tensor, bins: int = BINS) -> list[Tensor]:
    """Per network of x (N, ...) (one alone: N = 1): [(N, 4) min, max, Σ(x - min), Σ(x - min)²; (N, bins) counts
    of `bins` equal buckets over min..max].

    On x's device, one bincount for all networks. Sums are taken from the minimum so that the variance of a narrow
    spike far from zero (sigmoids at 0.5 ± 0.001) does not drown in float32 rounding. Two pieces, so that one
    torch.cat per capture joins everything (it promotes the int64 counts).
    """
    n = x.shape[0]
    x = x.detach().reshape(n, -1)  # (N, M)
    if x.dtype != torch.float32:
        x = x.float()
    lo, hi = torch.aminmax(x, dim=1)  # (N,) each
    shifted = x - lo.unsqueeze(1)  # (N, M) in [0, hi - lo]
    sums = torch.stack([lo, hi, shifted.sum(1), (shifted * shifted).sum(1)], dim=1)  # (N, 4)
    # (N, M) bucket of each value; a constant row (hi == lo) lands wholly in bucket 0; network r: buckets r*bins...
    index = shifted.mul_(bins).div_((hi - lo).clamp_min_(1e-30).unsqueeze(1)).int().clamp_(0, bins - 1)
    index += torch.arange(n, device=x.device, dtype=index.dtype).unsqueeze(1) * bins
    return [sums, torch.bincount(index.reshape(-1), minlength=n * bins).view(n, bins)]


Uses = list[tuple[str, str, int]]  # (kind, tag, numel) per piece of a capture


@dataclass
class LayerTensors:
    """What a capture measures of one layer of N networks (one alone: N = 1), each tensor (N, ...)."""

    pre: Tensor | None  # its output before the activation, on the probe batch
    act: Tensor | None  # the activation after it, on the probe batch
    params: list[tuple[str, str, Tensor]]  # (kind, tag name, parameter): weights/biases, norms' too
    grads: dict[int, Tensor] = field(default_factory=dict)  # id(parameter) -> its gradient
    weight: Tensor | None = None  # the layer's own weight (its gradient gets a histogram)
    ratio: Tensor | None = None  # (N,) ||W - W_before|| / ||W||, when kept before the step


@torch.no_grad()
def capture_values(
    layers: list[Layer],
    measured: dict[str, LayerTensors],
    networks: int,
    skipped: Collection[str] = (),
    bins: int = BINS,
) -> tuple[Uses, list[list[float]]]:
    """Every histogram and number of a capture of N networks that share `layers`' shape: (uses, one list of numbers
    per network), read back from the device ONCE. `uses` says what each piece is, in the order `Histograms.write`
    consumes them; the kinds in `skipped` are not computed (nothing writes them)."""
    pieces: list[Tensor] = []  # (N, k) device tensors
    uses: Uses = []

    def hist(tag: str, t: Tensor) -> None:
        if t[0].numel() and tag.split("/", 1)[0] not in skipped:
            pieces.extend(histogram_stats(t, bins))
            uses.append(("hist", tag, t[0].numel()))

    def value(kind: str, tag: str, t: Tensor, n: int = 1) -> None:  # t: (N,)
        pieces.append(t.reshape(-1, 1))
        uses.append((kind, tag, n))

    for layer in layers:
        found = measured.get(layer.name)
        if found is None:
            continue
        if found.pre is not None:
            hist(f"preactivations/{layer.name}", found.pre)
        if found.act is not None and layer.activation is not None and found.act[0].numel():
            name = layer.act_name
            hist(f"activations/{name}", found.act)  # its sum / sum of squares give act_mean / act_std
            health = unit_health(layer.activation, found.act)
            if health is not None:
                kind, prefix, count, out_of = health
                value(kind, f"{prefix}/{name}", count, out_of)
        norms = []
        for kind, name, p in found.params:
            hist(f"{kind}/{name}", p)
            if p[0].numel() == 1:  # a lone weight is a number to read (y = w x + b: the fitted slope), not a spread
                value("scalar", f"{SINGULAR[kind]}/{name}", p.detach().reshape(-1))
            grad = found.grads.get(id(p))
            if grad is not None:
                norms.append(grad.float().flatten(1).norm(dim=1))  # (N,)
                if p is found.weight:
                    hist(f"grads/{layer.name}", grad)
        if norms:  # the norm of the layer's whole gradient, without copying it into one tensor
            value("scalar", f"grad_norm/{layer.name}", torch.stack(norms).norm(dim=0))
        if found.ratio is not None:
            value("scalar", f"update_ratio/{layer.name}", found.ratio)
    if not pieces:
        return uses, [[] for _ in range(networks)]
    return uses, torch.cat([p.float() for p in pieces], dim=1).tolist()  # (N, total): the one host read


def without(uses: Uses, values: list[float], prefix: str, bins: int = BINS) -> tuple[Uses, list[float]]:
    """One network's capture without the pieces whose tag starts with `prefix` (a network with no update ratio at
    this step while others captured with it have one)."""
    kept_uses, kept, at = [], [], 0
    for use in uses:
        width = 4 + bins if use[0] == "hist" else 1
        if not use[1].startswith(prefix):
            kept_uses.append(use)
            kept += values[at : at + width]
        at += width
    return kept_uses, kept


def unit_health(activation: nn.Module, act: Tensor) -> tuple[str, str, Tensor, int] | None:
    """What a layer's outputs `act` (N, B, ...) of N networks (one alone: N = 1) on a probe batch of B say about its
    units: (kind, tag prefix, count per network (N,), out of). A bounded activation (sigmoid, tanh): the outputs within
    bounded.SATURATION_MARGIN of its bounds ("saturated"); ReLU: the units that output 0 for every probe sample ("dead";
    a convolution's channel is one unit: (N, B, C, H, W) -> C). None for other activations."""
    limits = bounded.saturation(bounded.kind(activation))
    if limits is not None:
        centre, reach = limits
        near = (act - centre).abs() > reach
        return "saturated", "saturation", near.flatten(1).sum(1), act[0].numel()
    if type(activation) is nn.ReLU:
        peak = act.transpose(1, 2).flatten(2).amax(2)  # (N, units): its largest output
        return "dead", "dead", (peak <= 0).sum(1), peak.shape[1]
    return None


def moments(values: list[float], n: int) -> tuple[float, float]:
    """(mean, standard deviation) from histogram_stats read back."""
    lo, _, s1, s2 = values[:4]
    shift = s1 / n
    return lo + shift, max(s2 / n - shift * shift, 0.0) ** 0.5


def histogram_proto_fields(values: list[float], numel: int, bins: int) -> dict | None:
    """The fields of TensorBoard's HistogramProto from histogram_stats read back; None if not finite."""
    lo, hi, s1, s2 = values[:4]
    counts = values[4 : 4 + bins]
    if not all(map(_finite, (lo, hi, s1, s2))):
        return None  # a diverging tensor: the guard reports it, not a histogram
    nonzero = [i for i, c in enumerate(counts) if c]
    first, last = nonzero[0], nonzero[-1]  # drop empty buckets at both ends, as TensorBoard's own writer
    width = (hi - lo) / bins
    # bucket_limit holds right edges; TensorBoard takes min / max as the outer edges.
    limits = [lo + width * (i + 1) for i in range(first, last)] + [hi]
    return dict(
        min=lo,
        max=hi,
        num=numel,
        sum=s1 + numel * lo,
        sum_squares=s2 + 2 * lo * s1 + numel * lo * lo,
        bucket_limits=limits,
        bucket_counts=counts[first : last + 1],
    )


def span_buckets(values: list[float], bins: int, span: tuple[float, float]) -> dict | None:
    """{"buckets": [(left, right, count)] * bins}: histogram_stats read back (buckets over min..max), re-binned
    over the whole `span`, empty buckets too; a bucket that straddles two is shared in proportion to its overlap
    (as TensorBoard re-bins for display). None if not finite."""
    lo, hi = values[:2]
    if not all(map(_finite, values[:4])):
        return None
    start, end = span
    width, data_width = (end - start) / bins, (hi - lo) / bins
    out = [0.0] * bins
    for i, count in enumerate(values[4 : 4 + bins]):
        if not count:
            continue
        left, right = lo + data_width * i, lo + data_width * (i + 1)
        first = min(max(int((left - start) // width), 0), bins - 1)
        last = min(max(int((right - start) // width), 0), bins - 1)
        if data_width == 0 or first == last:  # a constant tensor, or a bucket inside one of the span's
            out[first] += count
            continue
        for j in range(first, last + 1):
            overlap = min(right, start + width * (j + 1)) - max(left, start + width * j)
            out[j] += count * max(overlap, 0.0) / data_width
    return {"buckets": [(start + width * j, start + width * (j + 1), out[j]) for j in range(bins)]}


class Histograms:
    """Observer: histograms and summary scalars per layer, captured with short-lived forward hooks."""

    def __init__(self, board, model: nn.Module, probe: Tensor, bins: int = BINS, extra: bool = False):
        self.board, self.model, self.probe, self.bins = board, model, probe, bins  # probe: (P, *feature_shape)
        self.skipped = () if extra else EXTRA  # histogram kinds not captured
        self.layers = find_layers(model)
        self.toggle_mode = needs_mode_toggle(model)
        self.before: dict[int, Tensor] = {}  # id(weight) -> copy taken before the step preceding a capture
        self.before_step: int | None = None  # the step whose result `before` precedes
        self.final: dict[str, float] = {}  # hist/saturated, hist/dead of the last capture (for status.json)
        self.captures = 0

    # --- observer protocol: the loop says which steps are captured ---------------------------------
    def on_capture_next(self, state) -> None:
        self._snapshot(state.step + 1)  # the weights before that step, for its update/weight ratio

    def on_capture(self, state) -> None:
        self.capture(state.step)

    # --- the same for a stack of networks, all captured in one pass (dlexp/stacked/loop.py) ----------
    @staticmethod
    def stack_capture_next(members: list, stack) -> dict:
        """The step about to be taken is captured for these members ((row, state, observer) of the stack's
        networks): the stack keeps its weights before it, for their update ratios."""
        stack.keep_weights([row for row, _, _ in members])
        return {}

    @staticmethod
    def stack_capture(members: list, stack) -> dict:
        """A captured step: every member's histograms and numbers from one pass over the stack and one host read,
        each written by its own observer. Returns {row: error} for members whose writing failed."""
        rows = [row for row, _, _ in members]
        skipped = set.intersection(*(set(observer.skipped) for _, _, observer in members))  # written by none
        measured, with_ratios = stack.layer_tensors(rows)
        uses, values = capture_values(find_layers(stack.model_of(rows[0])), measured, stack.size, skipped)
        failed = {}
        for row, state, observer in members:
            own = (uses, values[row]) if row in with_ratios else without(uses, values[row], "update_ratio/")
            try:
                observer.write(own[1], own[0], state.step)
            except Exception as err:
                failed[row] = err
        return failed

    def _snapshot(self, step: int) -> None:
        with torch.no_grad():
            for layer in self.layers:
                w = getattr(layer.module, "weight", None)
                if isinstance(w, nn.Parameter):
                    saved = self.before.get(id(w))
                    if saved is None or saved.shape != w.shape:
                        self.before[id(w)] = w.detach().clone()
                    else:
                        saved.copy_(w)  # reuse the buffer: no allocation per snapshot
        self.before_step = step

    # --- the capture -------------------------------------------------------------------------------
    def activations(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        """layer name -> (pre-activation, activation or None), from one hooked forward pass on the probe."""
        return layer_outputs(self.model, self.layers, self.probe, self.toggle_mode)

    def capture(self, step: int) -> None:
        """Compute every histogram and number on the device, read them back once, write them."""
        if not self.layers:
            return
        seen = self.activations()
        measured = {}
        with torch.no_grad():
            for layer in self.layers:
                pre, act = seen.get(layer.name, (None, None))
                weight = getattr(layer.module, "weight", None)
                found = measured[layer.name] = LayerTensors(
                    pre=None if pre is None else pre.unsqueeze(0),
                    act=None if act is None else act.unsqueeze(0),
                    params=[],
                )
                for kind, name, p in layer.parameters():
                    one = p.unsqueeze(0)  # (1, ...): one network
                    found.params.append((kind, name, one))
                    if p.grad is not None:
                        found.grads[id(one)] = p.grad.unsqueeze(0)
                    if p is weight:
                        found.weight = one
                if self.before_step == step and isinstance(weight, nn.Parameter) and id(weight) in self.before:
                    found.ratio = ((weight - self.before[id(weight)]).norm() / weight.norm().clamp_min(1e-12)).reshape(
                        1
                    )
        uses, values = capture_values(self.layers, measured, 1, self.skipped, self.bins)
        if uses:
            self.write(values[0], uses, step)

    def write(self, values: list[float], uses: list[tuple[str, str, int]], step: int) -> None:
        """Write one capture from its numbers read back: `uses` says what each piece is (kind, tag, numel), `values`
        holds them in that order (a histogram: its `histogram_stats`; a scalar or a count: one number). A stack of
        jobs computes every job's numbers at once (dlexp/stacked/histograms.py) and hands each job its own."""
        self.captures += 1
        at, bins = 0, self.bins
        hists: dict[str, dict] = {}
        scalars: dict[str, float] = {}
        pooled = {"saturated": [0.0, 0], "dead": [0.0, 0]}  # kind -> [count, out of]
        broken = set()  # activations that are not finite (a diverged run)
        for kind, tag, n in uses:
            if kind == "hist":
                stats = values[at : at + 4 + bins]
                at += 4 + bins
                group, name = tag.split("/", 1)
                if not all(map(_finite, stats[:4])):  # a diverging tensor: the guard reports it, not a histogram
                    broken.add(name)
                    continue
                if group == "activations":
                    scalars[f"act_mean/{name}"], scalars[f"act_std/{name}"] = moments(stats, n)
                if group in self.skipped:
                    continue
                span = bounded.RANGES.get(name.split("_", 1)[-1]) if group == "activations" else None
                fields = span_buckets(stats, bins, span) if span else histogram_proto_fields(stats, n, bins)
                if fields is not None:  # None only for a tensor that is not finite, skipped above
                    hists[tag] = fields
                continue
            x = values[at]
            at += 1
            if kind in pooled:
                if tag.split("/", 1)[1] in broken:  # NaN units count as neither saturated nor dead: skip them
                    continue
                pooled[kind][0] += x
                pooled[kind][1] += n
                x /= n
            if _finite(x):
                scalars[tag] = x
        final = {f"hist/{kind}": count / total for kind, (count, total) in pooled.items() if total}
        if final or not broken:  # a wrecked network keeps the last meaningful numbers
            self.final = final
        scalars.update(final)
        self.board.summary(hists, scalars, step)  # one event for the whole capture


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def probe_batch(data, size: int = 256) -> Tensor:
    """The fixed inputs activations are measured on: the first `size` validation samples (training inputs
    when there are no labels, or no validation split)."""
    x = data.x_train if data.task == "unlabelled" or data.x_val.shape[0] == 0 else data.x_val
    return x[:size]


def needs_mode_toggle(model: nn.Module) -> bool:
    """Does a module behave differently in training? eval()/train() walk every module in Python: skip them if not."""
    return any(isinstance(m, MODE_DEPENDENT) or not type(m).__module__.startswith("torch.nn") for m in model.modules())


def layer_outputs(
    model: nn.Module, layers: list[Layer], x: Tensor, toggle_mode: bool = True
) -> dict[str, tuple[Tensor, Tensor | None]]:
    """layer name -> (pre-activation, activation or None), from one forward pass of x with hooks that exist
    only for that pass (model in eval mode when `toggle_mode`, no autograd)."""
    seen: dict[str, tuple[Tensor, Tensor | None]] = {}
    handles = []

    def on_activation(layer: Layer):
        def hook(module, inputs, output):
            seen[layer.name] = (inputs[0], output)

        return hook

    def on_layer(layer: Layer):
        def hook(module, inputs, output):
            seen[layer.name] = (output, None)

        return hook

    def keep_input(layer: Layer):  # an in-place activation overwrites its input
        def hook(module, inputs):
            seen[layer.name + "/pre"] = (inputs[0].clone(), None)

        return hook

    was_training = model.training
    try:
        for layer in layers:
            if layer.activation is None:
                handles.append(layer.module.register_forward_hook(on_layer(layer)))
                continue
            handles.append(layer.activation.register_forward_hook(on_activation(layer)))
            if getattr(layer.activation, "inplace", False):
                handles.append(layer.activation.register_forward_pre_hook(keep_input(layer)))
        if toggle_mode:
            model.eval()  # no dropout; batchnorm uses its running statistics
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()  # hooks live for this one pass only: nothing leaks
        if toggle_mode:
            model.train(was_training)
    for layer in layers:
        kept = seen.pop(layer.name + "/pre", None)
        if kept is not None and layer.name in seen:
            seen[layer.name] = (kept[0], seen[layer.name][1])
    return seen
