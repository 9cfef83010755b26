"""Identically represented inputs (IRIs): seeds, IRI losses and generation.

For a model, a layer and target images x_t, an IRI is an input x, started
from a seed x0, whose representation r(x) matches r(x_t):
L_rep = ||r(x) - r(x_t)||_2 / ||r(x_t)||_2. The losses add regularisers or an
adversarial term on a perceptual distance D. Generation runs the project's
one input-space optimiser (iriflow.optim) on all targets of a job as one
batch, keeps each image's best iterate, and flags IRIs whose L_rep stayed
above the threshold: those are not IRIs and are reported, not scored."""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .augment import affine_resample, gaussian_blur
from .datasets import load_prepared
from .device import memory_format
from .io import atomic_path
from .iriset import IRISet, SetId
from .losses import relative_distance
from .metrics import get_metric
from .models import frozen
from .optim import Stop, coarse_to_fine_filter, optimize
from .registry import Registry
from .represent import Representation, representation
from .targets import load_targets
from .viz import image_grid, save_png

log = logging.getLogger(__name__)
SEEDS = Registry("seed type")
IRI_LOSSES = Registry("IRI loss")


# --- seeds ---------------------------------------------------------------------


@dataclass
class SeedContext:
    targets: Tensor  # [N,C,H,W] in [0,1]
    labels: Tensor  # [N]
    pool: Tensor  # test images to draw other-image seeds from (targets excluded)
    pool_labels: Tensor
    gen: torch.Generator


@SEEDS.register("super-noise")
def super_noise(ctx: SeedContext) -> Tensor:
    """N(0,1) clamped to [0,1]."""
    return torch.randn(ctx.targets.shape, generator=ctx.gen).clamp(0, 1)


@SEEDS.register("light-noise")
def light_noise(ctx: SeedContext) -> Tensor:
    """0.01 * N(0,1) clamped to [0,1] (nearly black)."""
    return (0.01 * torch.randn(ctx.targets.shape, generator=ctx.gen)).clamp(0, 1)


@SEEDS.register("grey-noise")
def grey_noise(ctx: SeedContext) -> Tensor:
    """0.5 + 0.05 * N(0,1) (Engstrom et al. 2019)."""
    return (0.5 + 0.05 * torch.randn(ctx.targets.shape, generator=ctx.gen)).clamp(0, 1)


@SEEDS.register("other-image")
def other_image(ctx: SeedContext) -> Tensor:
    """A test image of another class than the target's, drawn per target."""
    n, m = len(ctx.labels), len(ctx.pool_labels)
    other = ctx.pool_labels[None, :] != ctx.labels[:, None]  # [N, M]
    if not other.any(1).all():
        raise ValueError("other-image seeds need test images of a class other than each target's")
    scores = torch.rand(n, m, generator=ctx.gen).masked_fill(~other, -1.0)
    return ctx.pool[scores.argmax(1)].clone()


@SEEDS.register("white")
def white(ctx: SeedContext) -> Tensor:
    return torch.ones_like(ctx.targets)


@SEEDS.register("black")
def black(ctx: SeedContext) -> Tensor:
    return torch.zeros_like(ctx.targets)


def seed_generator(seed: int, seed_type: str) -> torch.Generator:
    """Seeds depend only on (iris.seed, seed type): every model starts from the same seeds."""
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(seed_type.encode()))


def make_seeds(kind: str, ctx: SeedContext) -> Tensor:
    return SEEDS[kind](ctx).to(ctx.targets.dtype)


# --- losses --------------------------------------------------------------------


def total_variation(x: Tensor, beta: float = 2.0) -> Tensor:
    """Per-example sum over pixels of (dx^2 + dy^2)^(beta/2) (Mahendran & Vedaldi)."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2) + 1e-12).pow(beta / 2).flatten(1).sum(1)


def alpha_norm(x: Tensor, alpha: float = 6.0) -> Tensor:
    """Per-example ||x||_alpha over all pixels (with a tiny floor under the
    root: at a black image, x = 0, the root's gradient is infinite and would
    turn the image into NaN)."""
    return (x.abs().pow(alpha).flatten(1).sum(1) + 1e-12).pow(1.0 / alpha)


class ExampleStreams:
    """One random stream per example of a batch: example i's draws depend only
    on (seed, keys[i]) and on how many draws came before, never on the other
    examples of its batch (so grouping sets into one batch changes no IRI).
    Each call returns ``k`` uniforms in [0, 1) per example; drawn in blocks
    (on the CPU), the generators made at the first call (most losses draw none)."""

    def __init__(self, seed: int, keys: Tensor, block: int = 256):
        self.seed, self.keys, self.gens = seed, keys.tolist(), None
        self.block, self.buf, self.pos = block, None, 0
        self.rows: Tensor | None = None  # the active examples, on the CPU (LossContext.narrow); all are drawn

    def rand(self, k: int) -> Tensor:
        if self.gens is None:
            self.gens = [torch.Generator().manual_seed(self.seed * 1_000_003 + int(key)) for key in self.keys]
        if self.buf is None or self.pos == self.block or self.buf.shape[2] != k:
            self.buf = torch.stack([torch.rand(self.block, k, generator=g) for g in self.gens], 1)  # [block, N, k]
            self.pos = 0
        self.pos += 1
        u = self.buf[self.pos - 1]
        return u if self.rows is None else u[self.rows]


def example_keys(seed_type: str, n: int) -> Tensor:
    """The identities of a set's examples (its seed type and the target's
    position): the keys of their random streams (ExampleStreams)."""
    return torch.tensor([zlib.crc32(f"{seed_type}:{i}".encode()) for i in range(n)], dtype=torch.int64)


@dataclass
class LossContext:
    rep: Representation  # x -> r(x), gradients through a straight-through final ReLU
    target_rep: Tensor  # r(x_t), detached
    targets: Tensor  # x_t
    seeds: Tensor  # x0
    metric: str  # name of D (iriflow.metrics)
    streams: ExampleStreams  # per-example random transformations
    groups: Tensor | None = None  # [N] set of each example: batch statistics ('auto' weights) are per group

    rows: Tensor | None = None  # the active examples of the whole batch (narrow)

    def __post_init__(self):
        self._whole = (self.target_rep, self.targets, self.seeds, self.groups)

    def narrow(self, rows: Tensor) -> None:
        """Restrict the per-example tensors to the examples ``rows`` of the
        whole batch (in place: the losses built on this context follow; a
        per-example value a loss computed at build goes through ``cut``). The
        random streams keep drawing for every example, so each example's
        draws are those of the whole batch."""
        self.rows = rows
        self.streams.rows = rows.cpu()  # once per narrowing, not at every draw (a device read on CUDA)
        whole_rep, whole_targets, whole_seeds, whole_groups = self._whole
        self.target_rep, self.targets, self.seeds = whole_rep[rows], whole_targets[rows], whole_seeds[rows]
        self.groups = None if whole_groups is None else whole_groups[rows.to(whole_groups.device)]

    def cut(self, v: float | Tensor) -> float | Tensor:
        """A per-example value of the whole batch, restricted to the active examples."""
        return v[self.rows] if isinstance(v, Tensor) and v.ndim and self.rows is not None else v

    def l_rep(self, x: Tensor) -> Tensor:
        return relative_distance(self.rep(x), self.target_rep)

    def group_mean(self, v: Tensor) -> Tensor:
        """Each example's mean of ``v`` over the examples of its group."""
        if self.groups is None:
            return v.mean().expand_as(v)
        g = self.groups.to(v.device)
        sums = torch.zeros(int(g.max()) + 1, dtype=v.dtype, device=v.device).index_add_(0, g, v)
        counts = torch.bincount(g, minlength=len(sums)).to(v.dtype)
        return (sums / counts)[g]


LossFn = Callable[[Tensor], Tensor]


@IRI_LOSSES.register("regfree")
def regfree(ctx: LossContext) -> LossFn:
    return ctx.l_rep


@IRI_LOSSES.register("regfree-transforms")
def regfree_transforms(
    ctx: LossContext, jitter: int = 8, scale=(0.9, 1.1), rotation: float = 10.0, jitter2: int = 4
) -> LossFn:
    """L_rep of a randomly jittered, scaled, rotated and jittered-again x,
    freshly drawn at every step (transformation robustness, as in Lucid)."""

    def loss(x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        u = ctx.streams.rand(4).to(x)  # per example: two shifts, a scale, an angle
        span = jitter + jitter2
        shift = (u[:, :2] * (2 * span + 1)).floor().clamp(max=2 * span) - span
        s = scale[0] + (scale[1] - scale[0]) * u[:, 2]
        a = math.radians(rotation) * (2 * u[:, 3] - 1)
        theta = torch.stack(
            [
                torch.stack([a.cos() / s, -a.sin() / s, 2 * shift[:, 0] / w], 1),
                torch.stack([a.sin() / s, a.cos() / s, 2 * shift[:, 1] / h], 1),
            ],
            1,
        )
        return ctx.l_rep(affine_resample(x, theta))

    return loss


@IRI_LOSSES.register("tv-l6")
def tv_l6(
    ctx: LossContext,
    rep_weight: float = 10.0,
    tv_weight: float = 5e-4,
    tv_beta: float = 2.0,
    norm_weight: float = 1.0,
    norm_alpha: float = 6.0,
) -> LossFn:
    """Mahendran & Vedaldi: w_rep * L_rep + w_tv * TV_beta(x) + w_norm * ||x||_alpha."""
    return lambda x: (
        rep_weight * ctx.l_rep(x) + tv_weight * total_variation(x, tv_beta) + norm_weight * alpha_norm(x, norm_alpha)
    )


@IRI_LOSSES.register("freq")
def freq(
    ctx: LossContext,
    rep_weight: float = 10.0,
    tv_weight: float = 5e-4,
    blur_weight: float = 5e-4,
    l1_weight: float = 5e-5,
) -> LossFn:
    """w_rep * L_rep + w_tv * TV + w_blur * ||x - blur(x)||^2 + w_l1 * sum|x - 0.5|:
    penalises high spatial frequencies and saturated pixels."""

    def loss(x: Tensor) -> Tensor:
        n = x.shape[0]
        sharp = (x - gaussian_blur(x, torch.ones(n), torch.ones(n, dtype=torch.bool))).pow(2).flatten(1).sum(1)
        return (
            rep_weight * ctx.l_rep(x)
            + tv_weight * total_variation(x)
            + blur_weight * sharp
            + l1_weight * (x - 0.5).abs().flatten(1).sum(1)
        )

    return loss


def _lambda(ctx: LossContext, lam: float | str, l_rep: Tensor, dist: Tensor) -> float | Tensor:
    """A fixed weight, or 'auto': mean(L_rep)/mean(D) at the seeds, averaged
    over the examples of each IRI set (LossContext.groups), per example."""
    if lam != "auto":
        return float(lam)
    return ctx.group_mean(l_rep) / ctx.group_mean(dist).clamp_min(1e-8)


@IRI_LOSSES.register("adversarial")
def adversarial(ctx: LossContext, lam: float | str = 10.0, metric: str | None = None) -> LossFn:
    """L_rep - lambda * D(x, x_t): match the representation while looking unlike the target."""
    d = get_metric(metric or ctx.metric)
    with torch.no_grad():
        weight = _lambda(ctx, lam, ctx.l_rep(ctx.seeds), d(ctx.seeds, ctx.targets))
    return lambda x: ctx.l_rep(x) - ctx.cut(weight) * d(x, ctx.targets)


@IRI_LOSSES.register("adversarial-seed")
def adversarial_seed(ctx: LossContext, lam: float | str = 10.0, metric: str | None = None) -> LossFn:
    """L_rep + lambda * D(x, x0): match the representation while staying like the seed."""
    d = get_metric(metric or ctx.metric)
    with torch.no_grad():
        weight = _lambda(ctx, lam, ctx.l_rep(ctx.seeds), d(ctx.seeds, ctx.targets))
    return lambda x: ctx.l_rep(x) + ctx.cut(weight) * d(x, ctx.seeds)


def build_loss(spec: Mapping[str, Any], ctx: LossContext) -> LossFn:
    params = {k: v for k, v in spec.items() if k != "kind"}
    return IRI_LOSSES[spec["kind"]](ctx, **params)


# --- generation ------------------------------------------------------------------


@dataclass
class IRIResult:
    iris: Tensor  # [N,C,H,W]
    rel_dist: Tensor  # final L_rep per IRI
    loss: Tensor  # final value of the job's loss per IRI
    converged: Tensor  # rel_dist < threshold
    history: list[tuple[int, int, float]]  # (pass, step, mean loss); pass 0 is the first run, r > 0 restart r
    restarts: Tensor  # [N] int64: the restarts each IRI went through (0: it needed none, or restarts were off)

    def counts(self) -> dict[str, float | int]:
        """The job provenance's summary of these IRIs: median relative
        distance (torch's: the lower middle value for an even count), how
        many converged and were restarted, of how many."""
        return {
            "median_rel_dist": float(self.rel_dist.median()),
            "converged": int(self.converged.sum()),
            "restarted": int((self.restarts > 0).sum()),
            "n": len(self.rel_dist),
        }


def step_schedule(step_size: float, steps: int, schedule: str) -> float | Callable[[int], float]:
    """A constant step, or a cosine decay to zero (which lets the normalised
    steps settle instead of orbiting the optimum at a distance ~ step size)."""
    if schedule == "constant":
        return step_size
    return lambda t: step_size * 0.5 * (1 + math.cos(math.pi * t / max(1, steps)))


def generate(
    rep: Representation,
    targets: Tensor,
    seeds: Tensor,
    loss_spec: Mapping[str, Any],
    *,
    steps: int,
    step_size: float,
    optimizer: str = "normalized",
    schedule: str = "constant",
    keep_best: bool = True,
    threshold: float = 0.1,
    metric: str = "ssim",
    seed: int = 0,
    log_every: int = 100,
    stop_every: int = 0,
    amp: str = "off",
    on_log: Callable[[int, int, float], None] | None = None,
    keys: Tensor | None = None,
    groups: Tensor | None = None,
    momentum: float = 0.0,
    coarse_to_fine: Sequence[float] = (),
    restarts: int = 0,
) -> IRIResult:
    """Optimise all seeds of a job as one batch towards their targets'
    representations. Each example's update depends on no other example: its
    random transformations come from its own stream (keys: example
    identities, default their positions; ExampleStreams) and batch
    statistics are taken per IRI set (groups, default one set).

    stop_every > 0 (needs keep_best): every this many steps, IRIs whose kept
    iterate is below ``threshold`` are frozen and leave the batch (the others'
    paths do not change: each example's loss is its own). amp 'bf16' runs the
    loss under bfloat16 autocast on CUDA (ignored on the CPU, which stays float32).
    momentum: heavy ball of the normalised steps (iriflow.optim.NormalizedStep);
    coarse_to_fine: the fractions of the steps whose gradients are averaged
    over pixel blocks (iriflow.optim.coarse_to_fine_filter).

    restarts: up to this many further passes of the whole schedule for the
    IRIs whose rel_dist is still at or above ``threshold`` after a pass, each
    from that IRI's kept iterate with a fresh step rule (a warm restart: the
    large early steps again, which can carry an image over a barrier that
    the late small ones cannot). A pass runs only the IRIs it restarts, so
    IRIs that converged are left as they were; each IRI's path still depends
    on no other IRI. on_log(pass, step, mean loss): pass 0 is the first run;
    a restart's mean is over the IRIs it runs."""
    streams = ExampleStreams(seed, torch.arange(len(targets)) if keys is None else keys)
    with torch.no_grad():
        target_rep = rep(targets).detach()
    ctx = LossContext(rep, target_rep, targets, seeds, metric, streams, groups)
    loss_fn = _autocast_loss(build_loss(loss_spec, ctx), amp, targets.device)
    rule = {"normalized": "l2", "adam": "adam"}[optimizer]
    if restarts < 0:
        raise ValueError(f"restarts must be >= 0, got {restarts}")

    def stop_for(rows: Tensor) -> Stop | None:
        """The per-example stop of a pass over the examples ``rows`` of the batch."""
        if not stop_every:
            return None

        @torch.no_grad()
        def done(x: Tensor, active: Tensor) -> Tensor:
            return ctx.l_rep(x) < threshold  # ctx holds the rows of ``active``

        def narrow(active: Tensor) -> LossFn:
            ctx.narrow(rows[active])
            return loss_fn

        return Stop(stop_every, done, narrow)

    n = len(targets)
    every = torch.arange(n, device=targets.device)
    x, loss = seeds, None
    passes = torch.zeros(n, dtype=torch.int64)
    history: list[tuple[int, int, float]] = []
    rows = every
    for p in range(restarts + 1):
        ctx.narrow(rows)
        result = optimize(
            loss_fn,
            x[rows],
            rule=rule,
            steps=steps,
            step_size=step_schedule(step_size, steps, schedule),
            keep_best=keep_best,
            log_every=log_every,
            on_log=None if on_log is None else (lambda step, mean, p=p: on_log(p, step, mean)),
            stop=stop_for(rows),
            momentum=momentum,
            grad_filter=coarse_to_fine_filter(steps, coarse_to_fine),
        )
        history += [(p, step, mean) for step, mean in result.history]
        if p == 0:
            x, loss = result.x, result.loss
        else:
            x, loss = x.index_copy(0, rows, result.x), loss.index_copy(0, rows, result.loss)
            passes[rows.cpu()] = p
        if p == restarts:
            break
        ctx.narrow(every)
        with torch.no_grad():
            rows = (ctx.l_rep(x) >= threshold).nonzero().squeeze(1)  # a read of the device per pass
        if len(rows) == 0:
            break
    ctx.narrow(every)
    with torch.no_grad():
        rel = ctx.l_rep(x)
    return IRIResult(x, rel, loss, rel < threshold, history, passes)


def _autocast_loss(loss_fn: LossFn, amp: str, device: torch.device) -> LossFn:
    """The loss under bfloat16 autocast on CUDA (amp 'bf16'), returned in float32."""
    if amp == "off" or device.type != "cuda":
        return loss_fn

    def loss(x: Tensor) -> Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return loss_fn(x).float()

    return loss


def pool_without(x: Tensor, y: Tensor, exclude: Tensor) -> tuple[Tensor, Tensor]:
    keep = torch.ones(len(x), dtype=torch.bool)
    keep[exclude] = False
    return x[keep], y[keep]


# --- one job of the workflow (rules generate_iris and checkpoint_iris) ---------
#
# A job makes the IRI sets of one model, layer and IRI loss: one per seed type,
# all optimised together in batches of at most iris.max_batch examples. An
# example's update depends on no other example of its batch (generate), so
# the sets equal those that one job per set would make.


@dataclass
class JobInputs:
    seed_type: str
    targets: Tensor  # [N,C,H,W] in [0,1]
    labels: Tensor  # [N]
    index: np.ndarray  # the targets' indices in the test split
    seeds: Tensor  # [N,C,H,W]


def job_inputs(data_path, targets_path, seed_types: Sequence[str], seed: int) -> list[JobInputs]:
    """The targets and, per seed type, the seeds; the seeds depend only on
    (seed, seed type), so every model of a dataset starts from the same ones
    and a seed type's seeds do not depend on the job's other seed types.
    Other-image seeds are drawn from the test split without the targets."""
    targets, labels, index = load_targets(targets_path)
    test_x, test_y = load_prepared(data_path).tensors("test")
    pool_x, pool_y = pool_without(test_x, test_y, torch.from_numpy(index))
    return [
        JobInputs(
            kind,
            targets,
            labels,
            index,
            make_seeds(kind, SeedContext(targets, labels, pool_x, pool_y, seed_generator(seed, kind))),
        )
        for kind in seed_types
    ]


def chunks(n: int, max_batch: int) -> list[slice]:
    """``n`` examples in the fewest parts of at most ``max_batch``, of equal size (+-1)."""
    k = max(1, math.ceil(n / max_batch))
    bounds = [i * n // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def job_batches(sizes: Sequence[int], max_batch: int) -> tuple[list[slice], Tensor]:
    """The batches of a job whose sets have ``sizes`` examples (concatenated):
    each set in the fewest parts of at most ``max_batch`` (chunks), whole parts
    packed in order into batches of at most ``max_batch``. Returns the
    batches and each example's part (the group of its batch statistics), so
    a set is cut the same way whatever other sets share the job."""
    parts, start = [], 0
    for n in sizes:
        parts += [slice(start + c.start, start + c.stop) for c in chunks(n, max_batch)]
        start += n
    batches: list[slice] = []
    for part in parts:
        if batches and part.stop - batches[-1].start <= max_batch:
            batches[-1] = slice(batches[-1].start, part.stop)
        else:
            batches.append(part)
    groups = torch.cat([torch.full((p.stop - p.start,), i, dtype=torch.int64) for i, p in enumerate(parts)])
    return batches, groups


def run_job(
    model: torch.nn.Module,
    layer: str,
    sets: Sequence[JobInputs],
    s: Mapping[str, Any],
    device,
    max_batch: int = 1024,
    on_log: Callable[[int, int, int, float], None] | None = None,
    log_every: int = 100,
) -> tuple[list[IRIResult], list[tuple[int, int, int, float]]]:
    """IRIs of ``model`` at ``layer`` with the IRI settings ``s``
    (iriflow.config.iri_settings) on ``device`` for every set of ``sets``,
    optimised together in batches of at most ``max_batch`` examples
    (job_batches). Each example's update depends on no other example of its
    batch, so a set's IRIs are those of a job with that set alone. Returns
    one IRIResult per set (on the CPU) and the job's loss curve as (batch,
    pass, step, mean loss; generate), recorded every ``log_every`` steps;
    on_log(batch, pass, step, mean loss) reports progress. The IRIs are those
    of ``iriflow.models.frozen(model)`` (BatchNorms folded); ``model`` is
    left as it was."""
    device = torch.device(device)
    if s["amp"] != "off" and device.type != "cuda":
        log.warning("amp: CUDA only, ignored on %s (float32)", device.type)
    fmt = memory_format(s["channels_last"])
    rep = representation(frozen(model, s["channels_last"]), layer, fake_relu=True)
    targets = torch.cat([j.targets for j in sets])
    seeds = torch.cat([j.seeds for j in sets])
    keys = torch.cat([example_keys(j.seed_type, len(j.targets)) for j in sets])
    batches, groups = job_batches([len(j.targets) for j in sets], max_batch)
    parts, history = [], []
    for b, part in enumerate(batches):
        result = generate(
            rep,
            targets[part].to(device, memory_format=fmt),
            seeds[part].to(device, memory_format=fmt),
            s["loss_spec"],
            steps=s["steps"],
            step_size=s["step_size"],
            optimizer=s["optimizer"],
            schedule=s["step_schedule"],
            keep_best=s["keep_best"],
            threshold=s["threshold"],
            metric=s["metric"],
            seed=s["seed"],
            log_every=log_every,
            stop_every=s["stop_every"],
            amp=s["amp"],
            momentum=s["momentum"],
            coarse_to_fine=s["coarse_to_fine"],
            restarts=s["restarts"],
            on_log=None if on_log is None else (lambda p, step, loss, b=b: on_log(b, p, step, loss)),
            keys=keys[part],
            groups=groups[part].to(device),
        )
        parts.append([t.cpu() for t in (result.iris, result.rel_dist, result.loss, result.converged, result.restarts)])
        history += [(b, *row) for row in result.history]
    iris, rel, loss, converged, restarts = (torch.cat(col) for col in zip(*parts))
    results, start = [], 0
    for j in sets:
        sel = slice(start, start + len(j.targets))
        results.append(IRIResult(iris[sel], rel[sel], loss[sel], converged[sel], [], restarts[sel]))
        start = sel.stop
    return results, history


def job_set(set_id: SetId, inputs: JobInputs, result: IRIResult, s: Mapping[str, Any]) -> IRISet:
    """The IRI set of a job: its images and results, and the settings ``s``
    (iriflow.config.iri_settings) that made it; ``extra.restarts`` holds how
    many restarts each IRI went through (generate)."""
    return IRISet(
        set_id,
        iris=result.iris.numpy(),
        seeds=inputs.seeds.numpy(),
        targets=inputs.targets.numpy(),
        target_index=inputs.index,
        target_label=inputs.labels.numpy(),
        rel_dist=result.rel_dist.numpy(),
        loss=result.loss.numpy(),
        converged=result.converged.numpy(),
        settings=dict(s),
        extra={"restarts": result.restarts.numpy()},
    )


def perceptual_distances(iri_set: IRISet, metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """Per IRI, each metric's distance (iriflow.metrics) to its seed and to
    its target: columns ``<metric>_to_seed`` and ``<metric>_to_target``."""
    iris, seeds, targets = (torch.from_numpy(a) for a in (iri_set.iris, iri_set.seeds, iri_set.targets))
    out = {}
    with torch.no_grad():
        for name in metrics:
            d = get_metric(name)
            out[f"{name}_to_seed"] = d(iris, seeds).numpy()
            out[f"{name}_to_target"] = d(iris, targets).numpy()
    return out


CURVE_COLUMNS = ["batch", "pass", "step", "mean_loss"]


def save_curve(history: list[tuple[int, int, int, float]], path) -> None:
    """A job's loss curve (run_job) as CSV: batch, pass, step, mean_loss."""
    with atomic_path(path) as tmp:
        pd.DataFrame(history, columns=CURVE_COLUMNS).to_csv(tmp, index=False, float_format="%.6g")


def save_job(iri_set: IRISet, *, iris, table, grid, distances: Sequence[str] = ()) -> None:
    """The files of one IRI set of a job: ``iris`` (the IRI set,
    iriflow.iriset), ``table`` (CSV per IRI, with its restarts when the set
    records them and the perceptual ``distances`` of each IRI to its seed and
    target) and ``grid`` (PNG rows seed | IRI | target)."""
    iri_set.save(iris)
    with atomic_path(table) as tmp:
        pd.DataFrame(
            {
                "target": np.arange(len(iri_set)),
                "target_index": iri_set.target_index,
                "label": iri_set.target_label,
                "rel_dist": iri_set.rel_dist,
                "loss": iri_set.loss,
                "converged": iri_set.converged,
                **{k: iri_set.extra[k] for k in ("restarts",) if k in iri_set.extra},
                **perceptual_distances(iri_set, distances),
            }
        ).to_csv(tmp, index=False, float_format="%.6g")
    save_png(
        grid,
        image_grid(
            torch.from_numpy(np.concatenate([iri_set.seeds, iri_set.iris, iri_set.targets])),
            ncol=len(iri_set),
            scale=2,
            row_labels=["seed", "IRI", "target"],
        ),
    )
