"""Training losses (pure functions on tensors) and the per-example inner
objectives that iriflow.optim maximises or minimises.

- nt_xent: SimCLR's contrastive loss (Chen et al. 2020).
- trades_loss / trades_kl: TRADES (Zhang et al. 2019); its inner attack
  maximises trades_kl, see trades_attack_loss.
- mart_loss: MART (Wang et al. 2020); its inner attack maximises the
  cross-entropy, see ce_attack_loss (also the standard PGD training attack).
- relative_distance: ||a - b|| / ||b||, the adversarial SimCLR view's attack
  objective and the IRI representation loss, see relative_distance_loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor], Tensor]
Model = Callable[[Tensor], Tensor]
_TINY = 1e-12


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent over the 2N projections of N images' two views [N, D] each:
    every sample is an anchor whose positive is the other view of its image
    and whose negatives are the other 2N - 2 samples; mean over the anchors."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, positives)


def trades_kl(logits_clean: Tensor, logits_adv: Tensor) -> Tensor:
    """Per-example KL(softmax(clean) || softmax(adv)), Tensor[B]."""
    log_p_clean = F.log_softmax(logits_clean, dim=1)
    log_p_adv = F.log_softmax(logits_adv, dim=1)
    return (log_p_clean.exp() * (log_p_clean - log_p_adv)).sum(dim=1)


def trades_loss(logits_clean: Tensor, logits_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    """TRADES: CE(clean, y) + beta * KL(p_clean || p_adv), both batch means."""
    return F.cross_entropy(logits_clean, y) + beta * trades_kl(logits_clean, logits_adv).mean()


def mart_loss(logits_clean: Tensor, logits_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    """MART: boosted CE on the adversarial logits,
    CE(adv, y) - log(1 - max_{k != y} p_adv_k), plus
    beta * mean(KL(p_clean || p_adv) * (1 - p_clean_y))."""
    p_adv = F.softmax(logits_adv, dim=1)
    true_class = F.one_hot(y, p_adv.shape[1]).bool()
    top_wrong = p_adv.masked_fill(true_class, 0.0).amax(dim=1)
    ce = F.cross_entropy(logits_adv, y, reduction="none")
    boosted_ce = ce - torch.log((1 - top_wrong).clamp_min(_TINY))
    p_clean_y = F.softmax(logits_clean, dim=1).gather(1, y[:, None]).squeeze(1)
    robust = trades_kl(logits_clean, logits_adv) * (1 - p_clean_y)
    return boosted_ce.mean() + beta * robust.mean()


def relative_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per-example ||a - b||_2 / ||b||_2 over all but the batch dimension."""
    a, b = a.flatten(1), b.flatten(1)
    return (a - b).norm(dim=1) / b.norm(dim=1).clamp_min(_TINY)


def ce_attack_loss(model: Model, y: Tensor) -> LossFn:
    """Per-example cross-entropy of ``model(x)`` against ``y``: the PGD and
    MART inner objective (to be maximised)."""
    return lambda x: F.cross_entropy(model(x), y, reduction="none")


def trades_attack_loss(model: Model, logits_clean: Tensor) -> LossFn:
    """Per-example KL(p_clean || p_model(x)) against fixed clean logits: the
    TRADES inner objective (to be maximised; start from a random point, as
    its gradient vanishes at the clean input)."""
    logits_clean = logits_clean.detach()
    return lambda x: trades_kl(logits_clean, model(x))


def relative_distance_loss(f: Model, target: Tensor) -> LossFn:
    """Per-example ||f(x) - target|| / ||target|| against a fixed target
    representation: minimised for IRIs, maximised for adversarial SimCLR views."""
    target = target.detach()
    return lambda x: relative_distance(f(x), target)
