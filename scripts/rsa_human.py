"""Rule rsa_human: what the models are compared with. The odd-one-out
triplets of the group-mean behaviour RDM (odd one out last), the noise
ceiling of RSA with the participants (lower and upper bound, image-bootstrap
CIs), the participants' own odd-one-out agreement with the group, and the
scores of the human and monkey IT RDMs as reference rows."""

import pandas as pd

from iriflow.io import atomic_path, save_npz, write_json
from iriflow.rsa import HumanData, bootstrap_ceiling, human_triplets, noise_ceiling, participant_agreement, score_rdm
from iriflow.runtime import RuleContext
from iriflow.things import CHANCE, object_resamples, percentile_ci

ctx = RuleContext(snakemake)
p = snakemake.params
data = HumanData.load(snakemake.input.data)
triplets, tied = human_triplets(data, p.triplets["n"], p.triplets["seed"])
ctx.log.info("%d odd-one-out triplets (%d tied in the group mean and dropped)", len(triplets), tied)
save_npz(snakemake.output.triplets, triplets=triplets)

boot = p.bootstrap
resamples = object_resamples(len(data.images), boot["n"], boot["seed"])
lower, upper = noise_ceiling(data.behaviour)
reps = bootstrap_ceiling(data.behaviour, resamples)
agree_lower, agree_upper = participant_agreement(data.behaviour, triplets)
ceiling = {
    "participants": len(data.behaviour),
    "rsa_lower": lower,
    "rsa_upper": upper,
    "rsa_lower_ci": percentile_ci(reps[:, 0], boot["level"]),
    "rsa_upper_ci": percentile_ci(reps[:, 1], boot["level"]),
    "ooo_participant_lower": agree_lower,
    "ooo_participant_upper": agree_upper,
    "ooo_chance": CHANCE,
    "triplets": len(triplets),
    "triplets_tied": tied,
    "bootstrap": boot,
    "about": (
        "rsa_*: noise ceiling of the mean Spearman correlation with the participants' RDMs (Nili et al. "
        "2014): each participant against the mean of the others (lower) or of all (upper). "
        "ooo_participant_*: how often one participant's RDM picks the group's odd one out (group without "
        "(lower) or with (upper) that participant); a model may exceed it, the group mean being less "
        "noisy than one person."
    ),
}
ctx.log.info(
    "noise ceiling of RSA with behaviour: [%.3f, %.3f]; participants' odd-one-out agreement %.3f-%.3f (chance %.3f)",
    lower,
    upper,
    agree_lower,
    agree_upper,
    CHANCE,
)
write_json(snakemake.output.ceiling, ceiling)

rows = []
for name, label, matrix in (("hIT", "human IT (fMRI)", data.hit), ("mIT", "monkey IT (cells)", data.mit)):
    for r in score_rdm(matrix, -matrix, data, triplets, resamples, boot["level"]):
        rows.append({"kind": "reference", "dataset": "", "model": name, "label": label, "layer": "", **r})
        ctx.log.info("%s %s: %.4f [%.4f, %.4f]", name, r["measure"], r["value"], r["ci_lo"], r["ci_hi"])
with atomic_path(snakemake.output.references) as tmp:
    pd.DataFrame(rows).to_csv(tmp, index=False)
