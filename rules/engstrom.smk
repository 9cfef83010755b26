# Stage 3b: Engstrom et al. 2019 beyond inversion: direct feature
# visualisation, feature addition and interpolation in representation space
# (iriflow.engstrom), each through the IRI optimiser and stored as IRI sets.
# One job per procedure covers every model: on a CPU the work per model is
# seconds, and a job per model would mostly be interpreter start-up. The
# feature-visualisation sets carry the feature-2afc trials (rules/judgments.smk),
# scored and tested with the other trials (rules/analysis.smk: finding 4).

ENGSTROM_DIR = f"{R}/engstrom"
ENGSTROM_RESOURCES = config["engstrom"]["resources"]
ENGSTROM_INPUTS = {
    "data": expand(f"{R}/data/{{dataset}}/dataset.npz", dataset=DATASETS),
    "models": expand(f"{R}/models/{{model_id}}/model.pt", model_id=ALL_MODEL_IDS),
    "infos": expand(f"{R}/models/{{model_id}}/model.json", model_id=ALL_MODEL_IDS),
}


rule feature_visualisation:
    input:
        **ENGSTROM_INPUTS,
    output:
        sets=engstrom_sets("features"),
        table=f"{ENGSTROM_DIR}/features.csv",
        provenance=f"{ENGSTROM_DIR}/features.json",
    log:
        f"{R}/logs/engstrom/feature_visualisation.log",
    benchmark:
        f"{R}/benchmarks/engstrom/feature_visualisation.tsv"
    conda:
        "../envs/torch.yaml"
    threads: ENGSTROM_RESOURCES["threads"]
    resources:
        gpu=ENGSTROM_RESOURCES["gpu"],
        mem_mb=by_attempt(ENGSTROM_RESOURCES["mem_mb"]),
        runtime=by_attempt(ENGSTROM_RESOURCES["runtime"]),
    params:
        procedure="features",
        settings=engstrom_settings(config, "features"),
        model_ids=ALL_MODEL_IDS,
    script:
        "../scripts/engstrom_sets.py"


rule feature_addition:
    input:
        **ENGSTROM_INPUTS,
    output:
        sets=engstrom_sets("addition"),
        table=f"{ENGSTROM_DIR}/addition.csv",
        provenance=f"{ENGSTROM_DIR}/addition.json",
    log:
        f"{R}/logs/engstrom/feature_addition.log",
    benchmark:
        f"{R}/benchmarks/engstrom/feature_addition.tsv"
    conda:
        "../envs/torch.yaml"
    threads: ENGSTROM_RESOURCES["threads"]
    resources:
        gpu=ENGSTROM_RESOURCES["gpu"],
        mem_mb=by_attempt(ENGSTROM_RESOURCES["mem_mb"]),
        runtime=by_attempt(ENGSTROM_RESOURCES["runtime"]),
    params:
        procedure="addition",
        settings=engstrom_settings(config, "addition"),
        model_ids=ALL_MODEL_IDS,
    script:
        "../scripts/engstrom_sets.py"


rule interpolation:
    input:
        **ENGSTROM_INPUTS,
    output:
        sets=engstrom_sets("interpolation"),
        table=f"{ENGSTROM_DIR}/interpolation.csv",
        smoothness=report(
            f"{ENGSTROM_DIR}/interpolation_smoothness.csv", caption="../report/smoothness.rst", category="Engstrom"
        ),
        provenance=f"{ENGSTROM_DIR}/interpolation.json",
    log:
        f"{R}/logs/engstrom/interpolation.log",
    benchmark:
        f"{R}/benchmarks/engstrom/interpolation.tsv"
    conda:
        "../envs/torch.yaml"
    threads: ENGSTROM_RESOURCES["threads"]
    resources:
        gpu=ENGSTROM_RESOURCES["gpu"],
        mem_mb=by_attempt(ENGSTROM_RESOURCES["mem_mb"]),
        runtime=by_attempt(ENGSTROM_RESOURCES["runtime"]),
    params:
        procedure="interpolation",
        settings=engstrom_settings(config, "interpolation"),
        model_ids=ALL_MODEL_IDS,
    script:
        "../scripts/engstrom_sets.py"


# The three figures of the stage for the example pair (a standard and a robust
# model; analysis.examples), with the measures of every model beside them.
rule figure_engstrom:
    input:
        features=engstrom_sets("features", EXAMPLE_MODELS),
        addition=engstrom_sets("addition", EXAMPLE_MODELS),
        interpolation=engstrom_sets("interpolation", EXAMPLE_MODELS),
        smoothness=rules.interpolation.output.smoothness,
        scores=rules.model_scores.output.models,
    output:
        features=report(
            f"{FIG}/feature_visualisation.png", caption="../report/feature_visualisation.rst", category="Engstrom"
        ),
        features_pdf=f"{FIG}/feature_visualisation.pdf",
        addition=report(f"{FIG}/feature_addition.png", caption="../report/feature_addition.rst", category="Engstrom"),
        addition_pdf=f"{FIG}/feature_addition.pdf",
        interpolation=report(f"{FIG}/interpolation.png", caption="../report/interpolation.rst", category="Engstrom"),
        interpolation_pdf=f"{FIG}/interpolation.pdf",
    log:
        f"{R}/logs/figures/engstrom.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=EXAMPLE_MODELS,
        on_level=config["engstrom"]["addition"]["on_level"],
        metric=config["engstrom"]["interpolation"]["metric"],
        n_pairs=3,
    script:
        "../scripts/figure_engstrom.py"


rule engstrom:
    input:
        rules.figure_engstrom.output,
        rules.feature_visualisation.output.table,
        rules.feature_addition.output.table,
        rules.interpolation.output.table,


ENGSTROM_TARGETS = rules.engstrom.input if config["engstrom"]["enabled"] else []
