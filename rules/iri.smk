# Stage 3: identically represented inputs, one job per model x layer x IRI
# loss x seed type, all targets of a job optimised as one batch.


rule generate_iris:
    input:
        data=f"{R}/data/{{dataset}}/dataset.npz",
        targets=f"{R}/targets/{{dataset}}/targets.npz",
        model=f"{R}/models/{{dataset}}/{{model}}/model.pt",
        info=f"{R}/models/{{dataset}}/{{model}}/model.json",
    output:
        iris=f"{IRI_DIR}/iris.npz",
        table=f"{IRI_DIR}/iris.csv",
        curve=f"{IRI_DIR}/curve.csv",
        grid=f"{IRI_DIR}/grid.png",
        provenance=f"{IRI_DIR}/provenance.json",
    log:
        f"{R}/logs/iris/{{dataset}}/{{model}}/{{layer}}/{{loss}}/{{seed_type}}.log",
    benchmark:
        f"{R}/benchmarks/iris/{{dataset}}/{{model}}/{{layer}}/{{loss}}/{{seed_type}}.tsv"
    wildcard_constraints:
        model=MODEL_NAMES,
        loss=IRI_LOSS_NAMES,
        seed_type=SEED_TYPE_NAMES,
    conda:
        "../envs/torch.yaml"
    threads: config["iris"]["resources"]["threads"]
    resources:
        gpu=config["iris"]["resources"]["gpu"],
        mem_mb=by_attempt(config["iris"]["resources"]["mem_mb"]),
        runtime=by_attempt(config["iris"]["resources"]["runtime"]),
    params:
        settings=iri_job_settings,
        distances=[o["metric"] for o in config["judgments"]["observers"]["simulated"]],
    script:
        "../scripts/generate_iris.py"


rule iri_summary:
    input:
        tables=iri_outputs("iris.csv"),
    output:
        summary=f"{R}/iris/summary.csv",
    log:
        f"{R}/logs/iris/summary.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        threshold=config["iris"]["threshold"],
    script:
        "../scripts/iri_summary.py"


rule iris:
    input:
        rules.iri_summary.output.summary,
        iri_outputs("grid.png"),
