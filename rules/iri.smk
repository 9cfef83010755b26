# Stage 3: identically represented inputs. One job per model x layer x IRI
# loss makes the IRI sets of every seed type (one per seed type, at
# iris/<dataset>/<model>/<layer>/<loss>/<seed_type>/), optimised together in
# batches of at most iris.max_batch images; the job's loss curve and
# provenance are in iris/<dataset>/<model>/<layer>/<loss>/.


rule generate_iris:
    input:
        data=f"{R}/data/{{dataset}}/dataset.npz",
        targets=f"{R}/targets/{{dataset}}/targets.npz",
        model=f"{R}/models/{{dataset}}/{{model}}/model.pt",
        info=f"{R}/models/{{dataset}}/{{model}}/model.json",
    output:
        iris=iri_set_files("iris.npz"),
        table=iri_set_files("iris.csv"),
        grid=iri_set_files("grid.png"),
        curve=f"{IRI_JOB_DIR}/curve.csv",
        provenance=f"{IRI_JOB_DIR}/provenance.json",
    log:
        f"{R}/logs/iris/{{dataset}}/{{model}}/{{layer}}/{{loss}}.log",
    benchmark:
        f"{R}/benchmarks/iris/{{dataset}}/{{model}}/{{layer}}/{{loss}}.tsv"
    wildcard_constraints:
        model=MODEL_NAMES,
        loss=IRI_LOSS_NAMES,
    conda:
        "../envs/torch.yaml"
    threads: config["iris"]["resources"]["threads"]
    resources:
        gpu=config["iris"]["resources"]["gpu"],
        mem_mb=by_attempt(config["iris"]["resources"]["mem_mb"]),
        runtime=by_attempt(config["iris"]["resources"]["runtime"]),
    params:
        settings=iri_job_settings,
        seed_types=SEED_TYPES,
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
