"""Rule proxy_scores: the human-free proxies of every IRI set: the paper's
2AFC proxy (share of IRIs with D(IRI, target) <= D(IRI, other option), per
alternative and metric) and STIR (linear CKA between a second model's
representations of the targets and of the first model's IRIs), for every
pair of models of a dataset. Only converged IRIs count."""

from pathlib import Path

import pandas as pd
import torch

from iriflow.io import atomic_path
from iriflow.iriset import IRISet
from iriflow.models import load_model
from iriflow.proxies import linear_cka, proxy_2afc, summarise_proxy
from iriflow.represent import extract
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
p = snakemake.params
device = ctx.device()
trials = pd.concat([pd.read_csv(f, keep_default_na=False) for f in snakemake.input.trials], ignore_index=True)
trials_by_set = dict(tuple(trials.groupby("set_id", sort=False)))
models = {f"{Path(m).parent.parent.name}/{Path(m).parent.name}": m for m in snakemake.input.models}
loaded = {}


def model(model_id):
    if model_id not in loaded:
        loaded[model_id] = load_model(models[model_id], device=device)
    return loaded[model_id]


proxy_parts, stir_rows = [], []
for path in snakemake.input.iris:
    iri_set = IRISet.load(path)
    set_id, dataset = str(iri_set.id), iri_set.id.dataset
    images = iri_set.images()
    t = trials_by_set.get(set_id)
    if t is not None:
        for metric in p.metrics:
            proxy_parts.append(proxy_2afc(t, images, metric))
    ok = iri_set.converged
    for other in sorted(m for m in models if m.startswith(f"{dataset}/")):
        cka = float("nan")
        if int(ok.sum()) >= p.stir["min_iris"]:
            m2 = model(other)
            r_t = extract(m2, torch.from_numpy(iri_set.targets[ok]), p.stir["layer"], device=device)
            r_i = extract(m2, torch.from_numpy(iri_set.iris[ok]), p.stir["layer"], device=device)
            cka = linear_cka(r_t.double().numpy(), r_i.double().numpy())
        stir_rows.append(
            {
                "set_id": set_id,
                "model": iri_set.id.model_id,
                "reference_model": other,
                "layer": p.stir["layer"],
                "n": int(ok.sum()),
                "cka": cka,
            }
        )
    ctx.log.info("%s: %d converged IRIs; STIR vs %d models", set_id, int(ok.sum()), len(models))
proxy = summarise_proxy(pd.concat(proxy_parts, ignore_index=True) if proxy_parts else pd.DataFrame())
with atomic_path(snakemake.output.proxy) as tmp:
    proxy.to_csv(tmp, index=False, float_format="%.4f")
with atomic_path(snakemake.output.stir) as tmp:
    pd.DataFrame(stir_rows, columns=["set_id", "model", "reference_model", "layer", "n", "cka"]).to_csv(
        tmp, index=False, float_format="%.4f"
    )
ctx.log.info("2AFC proxy per set:\n%s", proxy.to_string(index=False))
