"""Rule evaluate_model: clean and PGD-robust accuracy on the test split."""

from iriflow.datasets import load_prepared
from iriflow.device import describe
from iriflow.io import write_json
from iriflow.models import evaluate, load_model
from iriflow.runtime import RuleContext

ctx = RuleContext(snakemake)
cfg = snakemake.params.evaluation
device = ctx.device()
prep = load_prepared(snakemake.input.data)
x, y = prep.tensors("test")
x, y = x[: cfg["n_test"]], y[: cfg["n_test"]]
model = load_model(snakemake.input.model, snakemake.input.info, device)
result = evaluate(model, x, y, cfg["attacks"], cfg["batch_size"], device, channels_last=cfg["channels_last"])
result.update(device=describe(device), wall_time_s=round(ctx.elapsed, 2))
ctx.log.info("%s", {k: v for k, v in result.items() if k.endswith("acc") or k.startswith("robust")})
write_json(snakemake.output.evaluation, result)
