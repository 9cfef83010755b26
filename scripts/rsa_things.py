"""Rule rsa_things: zero-shot odd-one-out accuracy of one model (one layer)
on a user's THINGS-style triplets (rsa.things: a triplet file whose last
column is the person's odd one out, and the images it indexes), normalised
by the noise ceiling, and the cross-validated linear probe."""

import pandas as pd
import torch
from PIL import Image

from iriflow.io import atomic_path, read_json
from iriflow.models import load_model
from iriflow.represent import extract
from iriflow.rsa import model_inputs, score_things, things_ceiling
from iriflow.runtime import RuleContext
from iriflow.things import list_images, read_triplets

ctx = RuleContext(snakemake)
w = snakemake.wildcards
cfg = snakemake.params.things
files = list_images(cfg["images"])
triplets = read_triplets(snakemake.input.triplets, len(files), cfg["index_base"])
ceiling, source = things_ceiling(triplets, cfg["ceiling"])
ctx.log.info("%d triplets of %d images; noise ceiling %.4f from %s", len(triplets), len(files), ceiling, source)

device = ctx.device(gpu=bool(snakemake.resources.gpu))
model = load_model(snakemake.input.model, snakemake.input.info, device)
shape = read_json(snakemake.input.meta)["shape"]
images = []
for f in files:
    with Image.open(f) as im:
        images.append(im.convert("RGB"))
x = torch.from_numpy(model_inputs(images, model.spec["in_channels"], shape[1:]))
features = extract(model, x, w.layer, device=device).double().numpy()
rows = score_things(features, triplets, ceiling, snakemake.params.settings, source)
for r in rows:
    ctx.log.info("%s: %.4f [%.4f, %.4f]", r["measure"], r["value"], r["ci_lo"], r["ci_hi"])
table = pd.DataFrame(rows).assign(kind="model", dataset=w.dataset, model=w.model, layer=w.layer)
with atomic_path(snakemake.output.scores) as tmp:
    table.to_csv(tmp, index=False)
