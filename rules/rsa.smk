# Alignment with real human similarity judgments: RSA and odd-one-out agreement
# of every model with people's judgments of 92 object images (Mur et al. 2013)
# and with human/monkey IT (Kriegeskorte et al. 2008); target `rsa`
# (README "Human similarity judgments (RSA, odd-one-out)").
from iriflow.analysis import preferred_levels  # noqa: E402

RSA = config["rsa"]
RSA_DIR = f"{R}/rsa"
RSA_LEVELS = preferred_levels(config)
# What a representation is scored with (iriflow.rsa.score_features).
RSA_SCORING = {k: RSA[k] for k in ("rdm_metric", "bootstrap", "probe")}
RSA_THINGS = bool(RSA["things"]["triplets"])


# One file per model and layer of rsa.layers.
RSA_SCORES = {
    kind: [f"{RSA_DIR}/{kind}/{m}/{layer}/scores.csv" for m in ALL_MODEL_IDS for layer in RSA["layers"]]
    for kind in ("models", "things")
}
RSA_DATASETS = sorted({m.split("/")[0] for m in ALL_MODEL_IDS})
RSA_MODEL_FILES = {
    "model": f"{R}/models/{{dataset}}/{{model}}/model.pt",
    "info": f"{R}/models/{{dataset}}/{{model}}/model.json",
    "meta": f"{R}/data/{{dataset}}/meta.json",
}


rule rsa_data:
    output:
        data=f"{RSA_DIR}/human/rsa92.npz",
        provenance=f"{RSA_DIR}/human/provenance.json",
    log:
        f"{R}/logs/rsa/data.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    script:
        "../scripts/rsa_data.py"


rule rsa_human:
    input:
        data=rules.rsa_data.output.data,
    output:
        triplets=f"{RSA_DIR}/human/triplets.npz",
        ceiling=f"{RSA_DIR}/human/ceiling.json",
        references=f"{RSA_DIR}/human/references.csv",
    log:
        f"{R}/logs/rsa/human.log",
    benchmark:
        f"{R}/benchmarks/rsa/human.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(20),
    params:
        triplets=RSA["triplets"],
        bootstrap=RSA["bootstrap"],
    script:
        "../scripts/rsa_human.py"


rule rsa_model:
    input:
        **RSA_MODEL_FILES,
        human=rules.rsa_data.output.data,
        triplets=rules.rsa_human.output.triplets,
    output:
        scores=f"{RSA_DIR}/models/{{dataset}}/{{model}}/{{layer}}/scores.csv",
        representations=f"{RSA_DIR}/models/{{dataset}}/{{model}}/{{layer}}/representations.npz",
    log:
        f"{R}/logs/rsa/models/{{dataset}}/{{model}}/{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/rsa/models/{{dataset}}/{{model}}/{{layer}}.tsv"
    wildcard_constraints:
        model=MODEL_NAMES,
    conda:
        "../envs/torch.yaml"
    threads: RSA["resources"]["threads"]
    resources:
        gpu=RSA["resources"]["gpu"],
        mem_mb=by_attempt(RSA["resources"]["mem_mb"]),
        runtime=by_attempt(RSA["resources"]["runtime"]),
    params:
        settings=RSA_SCORING,
    script:
        "../scripts/rsa_model.py"


rule rsa_baseline:
    input:
        human=rules.rsa_data.output.data,
        triplets=rules.rsa_human.output.triplets,
        meta=f"{R}/data/{{dataset}}/meta.json",
    output:
        scores=f"{RSA_DIR}/baselines/{{dataset}}/pixels.csv",
    log:
        f"{R}/logs/rsa/baselines/{{dataset}}.log",
    conda:
        "../envs/torch.yaml"
    threads: RSA["resources"]["threads"]
    resources:
        mem_mb=by_attempt(RSA["resources"]["mem_mb"]),
        runtime=by_attempt(RSA["resources"]["runtime"]),
    params:
        settings=RSA_SCORING,
    script:
        "../scripts/rsa_baseline.py"


rule rsa_things:
    input:
        **RSA_MODEL_FILES,
        triplets=RSA["things"]["triplets"] or [],
    output:
        scores=f"{RSA_DIR}/things/{{dataset}}/{{model}}/{{layer}}/scores.csv",
    log:
        f"{R}/logs/rsa/things/{{dataset}}/{{model}}/{{layer}}.log",
    wildcard_constraints:
        model=MODEL_NAMES,
    conda:
        "../envs/torch.yaml"
    threads: RSA["resources"]["threads"]
    resources:
        gpu=RSA["resources"]["gpu"],
        mem_mb=by_attempt(RSA["resources"]["mem_mb"]),
        runtime=by_attempt(RSA["resources"]["runtime"]),
    params:
        things=RSA["things"],
        settings=RSA_SCORING,
    script:
        "../scripts/rsa_things.py"


rule rsa_table:
    input:
        scores=RSA_SCORES["models"],
        baselines=expand(f"{RSA_DIR}/baselines/{{dataset}}/pixels.csv", dataset=RSA_DATASETS),
        references=rules.rsa_human.output.references,
        ceiling=rules.rsa_human.output.ceiling,
        things=RSA_SCORES["things"] if RSA_THINGS else [],
    output:
        csv=report(f"{R}/tables/rsa.csv", caption="../report/rsa_table.rst", category="Human similarity judgments"),
        markdown=f"{R}/tables/rsa.md",
        latex=f"{R}/tables/rsa.tex",
        html=report(f"{R}/tables/rsa.html", caption="../report/rsa_table.rst", category="Human similarity judgments"),
        summary=f"{RSA_DIR}/summary.txt",
    log:
        f"{R}/logs/rsa/table.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        models=model_design(config),
        levels=RSA_LEVELS,
        level=RSA["bootstrap"]["level"],
    script:
        "../scripts/rsa_table.py"


rule figure_rsa:
    input:
        table=rules.rsa_table.output.csv,
        ceiling=rules.rsa_human.output.ceiling,
    output:
        png=report(f"{R}/figures/rsa.png", caption="../report/rsa.rst", category="Human similarity judgments"),
        pdf=f"{R}/figures/rsa.pdf",
    log:
        f"{R}/logs/figures/rsa.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        levels=RSA_LEVELS,
    script:
        "../scripts/figure_rsa.py"


# Part of `all` (and of the report) unless rsa.enabled is false.
RSA_TARGETS = [*rules.rsa_table.output, *rules.figure_rsa.output] if RSA["enabled"] else []


rule rsa:
    input:
        rules.rsa_table.output,
        rules.figure_rsa.output,
