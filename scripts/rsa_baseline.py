"""Rule rsa_baseline: the model-free reference of a dataset, the pixels of
the 92 object images at that dataset's input size and channels, scored like
a model's representation."""

import pandas as pd

from iriflow.io import atomic_path, load_npz, read_json
from iriflow.rsa import HumanData, model_inputs, score_features
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
dataset = snakemake.wildcards.dataset
data = HumanData.load(snakemake.input.human)
triplets = load_npz(snakemake.input.triplets)["triplets"]
shape = read_json(snakemake.input.meta)["shape"]
pixels = model_inputs(data.images, shape[0], shape[1:]).reshape(len(data.images), -1)
ctx.log.info("pixels of %s: %s per image", dataset, shape)
rows = score_features(pixels, data, triplets, snakemake.params.settings, ctx.log.info)
table = pd.DataFrame(rows).assign(kind="baseline", dataset=dataset, model="pixels", layer="pixels")
with atomic_path(snakemake.output.scores) as tmp:
    table.to_csv(tmp, index=False)
