"""Rule rsa_model: one model's representation (one layer) of the 92 object
images, resized to the model's input size (grayscale for one-channel
models), its RDM, and its RSA and odd-one-out scores against people
(iriflow.rsa.score_features)."""

import pandas as pd
import torch

from iriflow.io import atomic_path, load_npz, read_json, save_npz
from iriflow.models import load_model
from iriflow.represent import extract
from iriflow.rsa import HumanData, model_inputs, rdm, score_features
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
w = snakemake.wildcards
settings = snakemake.params.settings
device = ctx.device(gpu=bool(snakemake.resources.gpu))
data = HumanData.load(snakemake.input.human)
triplets = load_npz(snakemake.input.triplets)["triplets"]
model = load_model(snakemake.input.model, snakemake.input.info, device)
shape = read_json(snakemake.input.meta)["shape"]  # [C, H, W] of the training images
x = torch.from_numpy(model_inputs(data.images, model.spec["in_channels"], shape[1:]))
features = extract(model, x, w.layer, device=device).double().numpy()
ctx.log.info(
    "%s/%s %s: %d images at %s -> features %s",
    w.dataset,
    w.model,
    w.layer,
    len(x),
    list(x.shape[1:]),
    list(features.shape[1:]),
)
save_npz(snakemake.output.representations, features=features, rdm=rdm(features, settings["rdm_metric"]))
rows = score_features(features, data, triplets, settings, ctx.log.info)
table = pd.DataFrame(rows).assign(kind="model", dataset=w.dataset, model=w.model, layer=w.layer)
with atomic_path(snakemake.output.scores) as tmp:
    table.to_csv(tmp, index=False)
