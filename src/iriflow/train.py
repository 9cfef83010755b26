"""Training: objectives (registry), optimisers, the learning-rate schedule,
and the epoch loop with atomic per-epoch checkpoints.

Determinism and resumption: the model is initialised from ``seed``; every
epoch draws its data order and augmentations from a generator seeded with
(seed, epoch). A job killed after epoch k and restarted from its checkpoint
therefore ends with exactly the weights of an uninterrupted run (on CPU).

Adversarial examples are generated with the network in eval mode (BatchNorm
uses running statistics, which the attack does not update), as in the TRADES
and MART reference recipes; the update step runs in train mode."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .augment import Augmentation
from .device import memory_format
from .io import atomic_path, torch_save
from .losses import ce_attack_loss, mart_loss, nt_xent, relative_distance_loss, trades_attack_loss, trades_loss
from .optim import pgd
from .registry import Registry

log = logging.getLogger(__name__)
OBJECTIVES = Registry("objective")
OPTIMIZERS = Registry("optimizer")


@contextlib.contextmanager
def eval_mode(*modules: nn.Module):
    states = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, s in zip(modules, states):
            m.train(s)


# --- objectives ----------------------------------------------------------------


class Objective(nn.Module):
    """Computes a batch's training loss; may own trainable parts (a projection
    head), which are optimised and checkpointed with the network."""

    supervised = True

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, aug: Augmentation, gen: torch.Generator
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The batch's loss and named 0-d metric tensors (kept on the device:
        the epoch loop averages them and reads them once per epoch)."""
        raise NotImplementedError


def _accuracy(logits: Tensor, y: Tensor) -> Tensor:
    return (logits.detach().argmax(1) == y).float().mean()


@OBJECTIVES.register("ce")
class CrossEntropy(Objective):
    """Supervised cross-entropy; with an adversarial augmentation, Madry et
    al.'s PGD training (the loss on the attacked batch only)."""

    def __init__(self, feature_dim: int, **_: Any):
        super().__init__()

    def loss(self, model, x, y, aug, gen):
        x = aug(x, gen)
        if aug.attack:
            with eval_mode(model):
                x = pgd(ce_attack_loss(model, y), x, aug.attack, generator=gen, evaluate_last=False).x
        logits = model(x)
        return F.cross_entropy(logits, y), {"acc": _accuracy(logits, y)}


class _PairedAdversarial(Objective):
    """TRADES and MART: a clean and an attacked copy of each (augmented) image."""

    def __init__(self, feature_dim: int, beta: float = 6.0, **_: Any):
        super().__init__()
        self.beta = beta

    def attack_loss(self, model, x, y):
        raise NotImplementedError

    def combine(self, logits_clean, logits_adv, y):
        raise NotImplementedError

    def loss(self, model, x, y, aug, gen):
        if not aug.attack:
            raise ValueError(f"{type(self).__name__} needs an adversarial augmentation (with an attack)")
        x = aug(x, gen)
        with eval_mode(model):
            x_adv = pgd(self.attack_loss(model, x, y), x, aug.attack, generator=gen, evaluate_last=False).x
        logits_clean, logits_adv = model(torch.cat([x, x_adv])).chunk(2)
        return self.combine(logits_clean, logits_adv, y), {
            "acc": _accuracy(logits_clean, y),
            "adv_acc": _accuracy(logits_adv, y),
        }


@OBJECTIVES.register("trades")
class Trades(_PairedAdversarial):
    """TRADES (Zhang et al. 2019): CE on clean + beta * KL(clean || adversarial)."""

    def attack_loss(self, model, x, y):
        with torch.no_grad():
            logits = model(x)
        return trades_attack_loss(model, logits)

    def combine(self, logits_clean, logits_adv, y):
        return trades_loss(logits_clean, logits_adv, y, self.beta)


@OBJECTIVES.register("mart")
class Mart(_PairedAdversarial):
    """MART (Wang et al. 2020): boosted CE on adversarial + beta * weighted KL."""

    def attack_loss(self, model, x, y):
        return ce_attack_loss(model, y)

    def combine(self, logits_clean, logits_adv, y):
        return mart_loss(logits_clean, logits_adv, y, self.beta)


@OBJECTIVES.register("simclr")
class SimCLR(Objective):
    """SimCLR (Chen et al. 2020): NT-Xent between two augmented views through a
    projection head d -> d -> proj_dim. With an adversarial augmentation each
    view is replaced by the L2-PGD point that maximises the relative distance
    of its projection from the clean view's (Kim et al. / Nanda et al.), and
    NT-Xent is computed on the adversarial views only."""

    supervised = False

    def __init__(self, feature_dim: int, temperature: float = 0.5, proj_dim: int = 128, **_: Any):
        super().__init__()
        self.temperature = temperature
        self.head = nn.Sequential(
            nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True), nn.Linear(feature_dim, proj_dim)
        )

    def project(self, model: nn.Module, x: Tensor) -> Tensor:
        return self.head(model.features(x))

    def loss(self, model, x, y, aug, gen):
        views = torch.cat([aug(x, gen), aug(x, gen)])
        if aug.attack:
            with eval_mode(model, self), torch.no_grad():
                clean = self.project(model, views)
            with eval_mode(model, self):
                views = pgd(
                    relative_distance_loss(lambda v: self.project(model, v), clean),
                    views,
                    aug.attack,
                    generator=gen,
                    evaluate_last=False,
                ).x
        z1, z2 = self.project(model, views).chunk(2)
        return nt_xent(z1, z2, self.temperature), {}


def build_objective(spec: Mapping[str, Any], feature_dim: int) -> Objective:
    params = {k: v for k, v in spec.items() if k not in ("kind", "train", "probe")}
    return OBJECTIVES[spec["kind"]](feature_dim, **params)


def training_fingerprint(settings: Mapping[str, Any]) -> str:
    """What makes a model's trained network, as text: its training job's
    settings (iriflow.config.model_settings) without a self-supervised
    objective's linear probe, which is fit afterwards on frozen features
    (fit_linear_probe). A checkpoint is resumed only under the same
    fingerprint, so a changed probe refits the probe on the trained network
    instead of training the network again."""
    objective = {k: v for k, v in settings["objective"].items() if k != "probe"}
    return json.dumps({**settings, "objective": objective}, sort_keys=True)


# --- optimisers and schedule -----------------------------------------------------


def _param_groups(params: list[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """No weight decay (and, for LARS, no trust ratio) on biases and norms."""
    decay = [p for n, p in params if p.ndim > 1]
    no_decay = [p for n, p in params if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay, "lars": True},
        {"params": no_decay, "weight_decay": 0.0, "lars": False},
    ]


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al. 2017)
    on parameter groups flagged ``lars``; trust coefficient eta."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=group["weight_decay"])
                if group["lars"]:
                    w_norm, g_norm = p.norm(), g.norm()
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm)
                    )
                    g = g.mul(trust)
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])


@OPTIMIZERS.register("sgd")
def _sgd(groups, cfg):
    return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=False)


@OPTIMIZERS.register("lars")
def _lars(groups, cfg):
    return LARS(groups, lr=cfg["lr"], momentum=cfg["momentum"])


@OPTIMIZERS.register("adam")
def _adam(groups, cfg):
    return torch.optim.Adam(groups, lr=cfg["lr"])


def lr_factor(schedule: Mapping[str, Any], epoch_float: float, epochs: int) -> float:
    """Multiplier of the base learning rate at a (fractional) epoch: linear
    warm-up, then constant, step decay or cosine to zero."""
    warm = schedule.get("warmup_epochs", 0)
    if warm and epoch_float < warm:
        return (epoch_float + 1e-8) / warm
    name = schedule.get("name", "step")
    if name == "constant":
        return 1.0
    if name == "step":
        return schedule.get("gamma", 0.1) ** int(epoch_float // schedule.get("step_epochs", 50))
    progress = (epoch_float - warm) / max(1e-8, epochs - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# --- the epoch loop --------------------------------------------------------------


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


CHECKPOINT_KEYS = ("model", "objective", "optimizer", "scaler", "epoch", "history", "fingerprint")


def _checkpoint_problem(state: Any, modules: Mapping[str, nn.Module]) -> str | None:
    """What makes ``state`` (a loaded Trainer checkpoint) unusable for
    ``modules``, or None: missing entries, or tensors that do not fit."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a checkpoint"
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        return f"no {', '.join(missing)}"
    for key, module in modules.items():
        own = module.state_dict()
        if not isinstance(state[key], Mapping) or set(state[key]) != set(own):
            return f"its {key} weights are not those of this {key}"
        bad = [k for k, v in own.items() if getattr(state[key][k], "shape", None) != v.shape]
        if bad:
            return f"{key} tensor {bad[0]} has shape {tuple(getattr(state[key][bad[0]], 'shape', ()))}"
    return None


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    resumed_from: int  # epochs already done when this run started


class Trainer:
    """Trains ``model`` with ``objective`` on (x, y) for recipe['epochs'];
    writes ``checkpoint`` (atomically) after every epoch and resumes from it."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        aug: Augmentation,
        recipe: Mapping[str, Any],
        seed: int,
        device: torch.device,
        checkpoint: str | Path,
        snapshot_dir: str | Path | None = None,
        fingerprint: str = "",
    ):
        self.model, self.objective, self.aug = model.to(device), objective.to(device), aug
        self.recipe, self.seed, self.device = recipe, seed, device
        self.checkpoint = Path(checkpoint)
        self.fingerprint = fingerprint  # what made the run; a checkpoint of other settings is not resumed
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else None
        params = list(self.model.named_parameters()) + list(self.objective.named_parameters())
        opt_cfg = recipe["optimizer"]
        self.opt = OPTIMIZERS[opt_cfg["name"]](_param_groups(params, opt_cfg["weight_decay"]), opt_cfg)
        self.base_lrs = [g["lr"] for g in self.opt.param_groups]
        self.history: list[dict[str, float]] = []
        self.epoch = 0
        amp = recipe.get("amp", "off")
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16" and device.type == "cuda")
        self.memory_format = memory_format(bool(recipe.get("channels_last")))
        self.model.to(memory_format=self.memory_format)
        if amp != "off" and device.type != "cuda":
            log.warning("amp: CUDA only, ignored on %s (float32)", device.type)

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "fingerprint": self.fingerprint,
        }

    def save_checkpoint(self) -> None:
        torch_save(self.checkpoint, self.state())

    def try_resume(self) -> int:
        """Resume from ``checkpoint`` when it holds a run of these settings. A
        checkpoint that cannot be read (truncated, empty, not a checkpoint of
        this model) is moved aside to ``<name>.corrupt-<time>`` with a warning
        and training starts from scratch (the file holds the only saved state)."""
        state = self._read_checkpoint()
        if state is None:
            return 0
        if state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring %s: it was written with other settings; training from scratch", self.checkpoint)
            return 0
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.opt.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.history = state["epoch"], state["history"]
        log.info("resumed from %s after epoch %d", self.checkpoint, self.epoch)
        return self.epoch

    def _read_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint's state, checked against this trainer's model and
        objective before anything is loaded; None when there is none or it was
        unreadable (then it has been moved aside)."""
        if not self.checkpoint.exists():
            return None
        try:
            state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
            problem = _checkpoint_problem(state, {"model": self.model, "objective": self.objective})
        except Exception as e:  # torch raises many kinds (RuntimeError, EOFError, UnpicklingError, ...)
            problem = f"{type(e).__name__}: {e}"
        if problem is None:
            return state
        aside = self.checkpoint.with_name(f"{self.checkpoint.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.checkpoint, aside)
        log.warning(
            "checkpoint %s cannot be used (%s): moved it aside to %s; training from scratch",
            self.checkpoint,
            str(problem).splitlines()[0][:300],
            aside,
        )
        return None

    def _autocast(self):
        if self.autocast_dtype is None or self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype)

    def run(
        self,
        x: Tensor,
        y: Tensor,
        stop_after: int | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
    ) -> TrainResult:
        """Train to the recipe's epoch count (or stop after ``stop_after``
        epochs of this call, used to test resumption)."""
        resumed = self.try_resume()
        epochs, bs = self.recipe["epochs"], self.recipe["batch_size"]
        n = len(x)
        steps_per_epoch = max(1, n // bs)
        done_here = 0
        while self.epoch < epochs and (stop_after is None or done_here < stop_after):
            start = time.perf_counter()
            gen = epoch_generator(self.seed, self.epoch)
            order = torch.randperm(n, generator=gen)
            self.model.train()
            self.objective.train()
            losses = torch.empty(steps_per_epoch, dtype=torch.float64, device=self.device)
            sums: dict[str, Tensor] = {}
            for i in range(steps_per_epoch):  # drop the last incomplete batch
                factor = lr_factor(self.recipe["schedule"], self.epoch + i / steps_per_epoch, epochs)
                for g, base in zip(self.opt.param_groups, self.base_lrs):
                    g["lr"] = base * factor
                idx = order[i * bs : (i + 1) * bs]
                xb = x[idx].to(self.device, non_blocking=True, memory_format=self.memory_format)
                yb = y[idx].to(self.device, non_blocking=True)
                with self._autocast():
                    loss, metrics = self.objective.loss(self.model, xb, yb, self.aug, gen)
                self.opt.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()
                losses[i] = loss.detach()
                for k, v in metrics.items():  # float64 sums in step order, as Python floats would be
                    sums[k] = sums.get(k, 0.0) + v.detach().double()
            # the epoch's one read of the device: every loss and metric at once
            bad = (~torch.isfinite(losses)).nonzero()
            if len(bad):
                i = int(bad[0])
                raise FloatingPointError(f"loss became {losses[i].item()} at epoch {self.epoch + 1}, step {i}")
            means = dict(
                zip(["loss", *sums], torch.stack([losses.sum(), *sums.values()]).div(steps_per_epoch).tolist())
            )
            self.epoch += 1
            done_here += 1
            row = {
                "epoch": self.epoch,
                "lr": self.opt.param_groups[0]["lr"],
                **means,
                "seconds": time.perf_counter() - start,
            }
            self.history.append(row)
            self.save_checkpoint()
            every = self.recipe.get("snapshot_every", 0)
            if self.snapshot_dir and every and self.epoch % every == 0:
                self.save_snapshot(self.snapshot_dir / f"epoch{self.epoch:04d}.pt")
            log.info(
                "epoch %d/%d %s", self.epoch, epochs, " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
            )
            if on_epoch:
                on_epoch(row)
        return TrainResult(self.history, resumed)

    def save_snapshot(self, path: Path) -> None:
        torch_save(
            path, {"model": self.model.state_dict(), "objective": self.objective.state_dict(), "epoch": self.epoch}
        )


def write_history_csv(path: str | Path, history: list[dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


# --- linear probe (accuracy of self-supervised features) ----------------------------


def fit_linear_probe(
    model: nn.Module, x: Tensor, y: Tensor, num_classes: int, cfg: Mapping[str, Any], seed: int, device: torch.device
) -> float:
    """Train ``model.head`` on frozen penultimate features of un-augmented
    training images (SGD + cosine); returns the training accuracy."""
    model.eval()
    with torch.inference_mode():
        feats = torch.cat([model.features(x[i : i + 512].to(device)) for i in range(0, len(x), 512)])
    feats, y = feats.clone(), y.to(device)
    head = model.head
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.SGD(head.parameters(), lr=cfg["lr"], momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    mu, sd = feats.mean(0), feats.std(0).clamp_min(1e-6)
    z = (feats - mu) / sd
    bs, n = cfg["batch_size"], len(z)
    steps = max(1, math.ceil(n / bs)) * cfg["epochs"]
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cfg["lr"] * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, n, (min(bs, n),), generator=gen).to(device)
        logits = z[idx] @ head.weight.T + head.bias
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    # fold the feature standardisation into the head: head(f) = W (f - mu)/sd + b
    with torch.no_grad():
        head.weight.div_(sd)
        head.bias.sub_(head.weight @ mu)
        acc = (head(feats).argmax(1) == y).float().mean().item()
    return acc
