"""The one input-space optimiser: PGD attacks (adversarial training and robust
evaluation) and IRI generation (representation inversion) run the same loop.

Images live in pixel space [0, 1] as a batch ``x`` of shape [B, C, H, W]. The
objective is a plug-in ``loss_fn(x) -> Tensor[B]`` of per-example losses, which
the loop minimises (``maximize=True`` for attacks). Only the input gets a
gradient (``torch.autograd.grad`` w.r.t. ``x``): model parameters never get a
``.grad``. The model's train/eval mode is the caller's business; note that
BatchNorm in train mode couples the examples of a batch.

A step rule turns a gradient into a step; after each step the iterate is
projected onto the rule's ball of radius ``eps`` around the start ``x0`` (none
when ``eps`` is infinite) and clamped to [0, 1]:

- ``l2``:   x <- x - step_size * g / ||g||_2 (per example), L2 ball; optionally
  with momentum on the unit gradients (NormalizedStep);
- ``linf``: x <- x - step_size * sign(g), Linf ball;
- ``adam``: Adam on x with lr = step_size, L2 ball.

IRIs are ``l2`` with eps = inf; PGD is ``l2``/``linf`` with a finite eps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import Registry

LossFn = Callable[[Tensor], Tensor]
STEP_RULES = Registry("step rule")
ATTACK_DEFAULTS = {"steps": 7, "step_size": 0.5, "random_start": True}
_TINY = 1e-12


@dataclass
class OptimResult:
    """Final (or, with keep_best, each example's best) images and losses, both
    detached, and the mean-loss curve as (step, mean loss) pairs (``history``:
    means still on the device are read when it is first asked for, in one go)."""

    x: Tensor
    loss: Tensor | None
    recorded: list[tuple[int, Tensor | float]] = field(default_factory=list)

    @property
    def history(self) -> list[tuple[int, float]]:
        pending = [m for _, m in self.recorded if isinstance(m, Tensor)]
        if pending:
            means = iter(torch.stack(pending).tolist())
            self.recorded = [(s, next(means) if isinstance(m, Tensor) else m) for s, m in self.recorded]
        return list(self.recorded)


def _per_example_norm(t: Tensor) -> Tensor:
    """L2 norm of each example, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _project_l2(delta: Tensor, eps: float) -> Tensor:
    return delta * (eps / _per_example_norm(delta).clamp_min(_TINY)).clamp(max=1.0)


def _project_linf(delta: Tensor, eps: float) -> Tensor:
    return delta.clamp(-eps, eps)


def _random_l2(shape: torch.Size, eps: float, gen: torch.Generator | None, device) -> Tensor:
    """Uniform random direction, radius uniform in [0, eps]."""
    direction = torch.randn(shape, generator=gen, device=device)
    radius = eps * torch.rand(shape[0], generator=gen, device=device)
    unit = direction / _per_example_norm(direction).clamp_min(_TINY)
    return unit * radius.view(-1, *([1] * (len(shape) - 1)))


def _random_linf(shape: torch.Size, eps: float, gen: torch.Generator | None, device) -> Tensor:
    return (2 * torch.rand(shape, generator=gen, device=device) - 1) * eps


_BALLS: dict[str, tuple[Callable[[Tensor, float], Tensor], Callable[..., Tensor]]] = {
    "l2": (_project_l2, _random_l2),
    "linf": (_project_linf, _random_linf),
}


@STEP_RULES.register("l2")
class NormalizedStep:
    """Normalised gradient descent: x - step_size * d / ||d||_2 per example,
    d the gradient g; with momentum beta > 0, d is a heavy ball of unit
    gradients, d <- beta * d + g / ||g||_2 (each step still of length
    step_size: momentum turns the direction, not the length)."""

    ball = "l2"

    def __init__(self, x0: Tensor, step_size: float, momentum: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.step_size, self.momentum = step_size, momentum
        self.d = torch.zeros_like(x0) if momentum else None

    def narrow(self, keep: Tensor) -> None:
        """Keep the state of the examples ``keep`` only."""
        if self.d is not None:
            self.d = self.d[keep]

    def __call__(self, x: Tensor, g: Tensor) -> Tensor:
        d = g
        if self.d is not None:
            d = self.d.mul_(self.momentum).add_(g / _per_example_norm(g).clamp_min(_TINY))
        return x - self.step_size * d / _per_example_norm(d).clamp_min(_TINY)


@STEP_RULES.register("linf")
class SignStep:
    """Signed gradient descent: x - step_size * sign(g)."""

    ball = "linf"

    def __init__(self, x0: Tensor, step_size: float):
        self.step_size = step_size

    def narrow(self, keep: Tensor) -> None:
        pass

    def __call__(self, x: Tensor, g: Tensor) -> Tensor:
        return x - self.step_size * g.sign()


@STEP_RULES.register("adam")
class AdamStep:
    """Adam (Kingma & Ba 2015) on the pixels, lr = step_size."""

    ball = "l2"

    def __init__(self, x0: Tensor, step_size: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.step_size, self.betas, self.eps = step_size, betas, eps
        self.m = torch.zeros_like(x0)
        self.v = torch.zeros_like(x0)
        self.t = 0

    def narrow(self, keep: Tensor) -> None:
        self.m, self.v = self.m[keep], self.v[keep]

    def __call__(self, x: Tensor, g: Tensor) -> Tensor:
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(g, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return x - self.step_size * m_hat / (v_hat.sqrt() + self.eps)


def coarse_to_fine_filter(steps: int, until: Sequence[float]) -> Callable[[int, Tensor], Tensor] | None:
    """A gradient filter for ``optimize`` (``grad_filter``): with L fractions
    ``until``, the gradient of a step before ``until[i] * steps`` is averaged
    over blocks of 2**(L - i) x 2**(L - i) pixels (the first of the levels it
    is under), each block's pixels getting its mean, full resolution after
    the last. Early steps then move whole regions of the image, which lets an
    inversion leave a local minimum of fine detail; each image is filtered
    alone. None when ``until`` is empty. (Spreading the means smoothly,
    bilinearly, leaves no block edges but painted target-like strokes into a
    standard model's IRIs: a stronger prior; README, "How far an IRI leaves
    its seed".)"""
    if not until:
        return None
    if any(not 0 < u <= 1 for u in until) or any(a >= b for a, b in zip(until, until[1:])):
        raise ValueError(f"coarse_to_fine fractions must rise within (0, 1], got {list(until)}")
    bounds = [(round(u * steps), 2 ** (len(until) - i)) for i, u in enumerate(until)]

    def blocks(step: int, g: Tensor) -> Tensor:
        factor = next((f for bound, f in bounds if step < bound), 1)
        if factor == 1:
            return g
        h, w = g.shape[-2:]
        pooled = F.adaptive_avg_pool2d(g, (math.ceil(h / factor), math.ceil(w / factor)))
        return F.interpolate(pooled, size=(h, w), mode="nearest")

    return blocks


@dataclass
class Stop:
    """Per-example early stop of ``optimize``: every ``every`` steps, ``done(x,
    active)`` says (a bool per example, on the device) which of the ``active``
    examples (their indices in the whole batch) are finished, judged on their
    kept iterates ``x``. Finished examples are frozen at their kept iterate and
    leave the batch, so they cost nothing more; ``narrow(active)`` returns the
    loss function of the remaining examples (a loss_fn closes over per-example
    data such as targets). Each example's update must not depend on the other
    examples of the batch, or leaving would change the others' paths."""

    every: int
    done: Callable[[Tensor, Tensor], Tensor]
    narrow: Callable[[Tensor], LossFn]


def optimize(
    loss_fn: LossFn,
    x0: Tensor,
    *,
    rule: str = "l2",
    steps: int,
    step_size: float | Callable[[int], float],
    eps: float = math.inf,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    keep_best: bool = False,
    maximize: bool = False,
    log_every: int | None = None,
    evaluate_last: bool = True,
    on_log: Callable[[int, float], None] | None = None,
    stop: Stop | None = None,
    momentum: float = 0.0,
    grad_filter: Callable[[int, Tensor], Tensor] | None = None,
) -> OptimResult:
    """Run ``steps`` steps of ``rule`` on ``loss_fn`` from ``x0`` (in [0, 1]).
    ``step_size`` is a number or a schedule step -> size.

    random_start: start uniformly in the rule's eps ball (needs a finite eps),
    drawn from ``generator`` (the global RNG when None). keep_best: return each
    example's best iterate, else the last. maximize: ascend instead of descend.
    log_every: also record the mean loss every this many steps (step 0 and the
    last step are always recorded). Losses are reported with their own sign.
    evaluate_last=False (only without keep_best) skips the forward pass on
    the final iterate, whose loss is then None: adversarial training needs
    only the point. on_log(step, mean_loss) is called for every recorded
    point (progress reporting). stop (needs keep_best): freeze examples once
    finished (``Stop``); the logged mean then counts a frozen example with
    its kept loss. momentum: the heavy ball of the l2 rule (NormalizedStep).
    grad_filter(step, grad) -> grad: a transform of each step's gradient
    before the step rule (e.g. ``coarse_to_fine_filter``); it must treat each
    example alone.

    The loop never waits for the device between steps: the recorded means
    stay on the device until the end, unless on_log asks for them (one read
    per recorded step), and a Stop check reads one flag per example every
    ``stop.every`` steps.
    """
    if not evaluate_last and keep_best:
        raise ValueError("keep_best needs the loss of every iterate (evaluate_last=True)")
    if stop is not None and not keep_best:
        raise ValueError("stop freezes each example at its kept iterate: it needs keep_best")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x0 = x0.detach()
    schedule = step_size if callable(step_size) else None
    if momentum and rule != "l2":
        raise ValueError(f"momentum is a setting of the l2 step rule, not of {rule!r}")
    options = {"momentum": momentum} if momentum else {}
    step_rule = STEP_RULES[rule](x0, schedule(0) if schedule else step_size, **options)
    project, sample = _BALLS[step_rule.ball]
    x = x0.clone()
    if random_start:
        if not math.isfinite(eps):
            raise ValueError("random_start needs a finite eps")
        device = generator.device if generator is not None else x0.device
        x = (x0 + sample(x0.shape, eps, generator, device).to(x0)).clamp(0, 1)
    sign = -1.0 if maximize else 1.0
    n = x0.shape[0]
    best_x, best_obj = x.clone(), torch.full((n,), math.inf, device=x0.device)
    # with stop: the whole batch's kept iterates and losses; x, x0 and the best_* hold the active rows
    active = torch.arange(n, device=x0.device)
    all_x, all_obj = (best_x.clone(), best_obj.clone()) if stop is not None else (None, None)
    recorded: list[tuple[int, Tensor | float]] = []
    loss = None
    for step in range(steps + 1):
        last = step == steps
        if last and not evaluate_last:
            return OptimResult(x, None, recorded)
        x.requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            loss = loss_fn(x)
            grad = None if last else torch.autograd.grad(loss.sum() * sign, x)[0]
        x, loss = x.detach(), loss.detach().float()
        obj = sign * loss
        if keep_best:
            better = obj < best_obj
            best_obj = torch.where(better, obj, best_obj)
            best_x = torch.where(better.view(-1, *([1] * (x.dim() - 1))), x, best_x)
        if step == 0 or last or (log_every and step % log_every == 0):
            mean = loss.mean() if stop is None else _mean_with_frozen(loss, sign * all_obj, active)
            recorded.append((step, mean.item() if on_log else mean))
            if on_log:
                on_log(*recorded[-1])
        if stop is not None and (last or (step and step % stop.every == 0)):
            all_x[active], all_obj[active] = best_x, best_obj
            if last:
                break
            keep = (~stop.done(best_x, active)).nonzero().squeeze(1)  # the one read of a check
            if len(keep) < len(active):
                if len(keep) == 0:  # every example finished: the curve ends with their kept losses
                    final = (sign * all_obj).mean()
                    recorded.append((steps, final.item() if on_log else final))
                    if on_log:
                        on_log(*recorded[-1])
                    break
                active, x, x0, best_x, best_obj, grad = (t[keep] for t in (active, x, x0, best_x, best_obj, grad))
                step_rule.narrow(keep)
                loss_fn = stop.narrow(active)
        if not last:
            if schedule:
                step_rule.step_size = schedule(step)
            if grad_filter is not None:
                grad = grad_filter(step, grad)
            x = step_rule(x, grad)
            if math.isfinite(eps):
                x = x0 + project(x - x0, eps)
            x = x.clamp(0, 1)
    if stop is not None:
        return OptimResult(all_x, sign * all_obj, recorded)
    if keep_best:
        return OptimResult(best_x, sign * best_obj, recorded)
    return OptimResult(x, loss, recorded)


def _mean_with_frozen(loss: Tensor, all_loss: Tensor, active: Tensor) -> Tensor:
    """Mean over the whole batch of the active examples' current losses and
    the frozen ones' kept losses."""
    return all_loss.index_put((active,), loss).mean()


def pgd(
    loss_fn: LossFn,
    x0: Tensor,
    attack: Mapping,
    *,
    generator: torch.Generator | None = None,
    keep_best: bool = False,
    evaluate_last: bool = True,
) -> OptimResult:
    """PGD that maximises ``loss_fn`` in the ball of an attack config
    {norm: l2|linf, eps, steps, step_size, random_start} (missing keys take
    the schema's defaults). E.g. ``pgd(ce_attack_loss(model, y), x, cfg).x``."""
    unknown = set(attack) - {"norm", "eps", *ATTACK_DEFAULTS}
    if unknown:
        raise ValueError(f"unknown attack settings {sorted(unknown)}")
    cfg = {**ATTACK_DEFAULTS, **attack}
    if cfg["norm"] not in _BALLS:
        raise ValueError(f"attack norm must be one of {sorted(_BALLS)}, got {cfg['norm']!r}")
    return optimize(
        loss_fn,
        x0,
        rule=cfg["norm"],
        steps=int(cfg["steps"]),
        step_size=float(cfg["step_size"]),
        eps=float(cfg["eps"]),
        random_start=bool(cfg["random_start"]),
        generator=generator,
        keep_best=keep_best,
        maximize=True,
        evaluate_last=evaluate_last,
    )
