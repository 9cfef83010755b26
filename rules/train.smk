# Stage 2: train every model of the grid, evaluate it, and tabulate the grid.
# Epoch checkpoints live outside the declared outputs (params.checkpoint), so
# a failed or preempted job that Snakemake retries resumes from its last epoch.


rule train_model:
    input:
        data=f"{R}/data/{{dataset}}/dataset.npz",
    output:
        model=f"{R}/models/{{dataset}}/{{model}}/model.pt",
        info=f"{R}/models/{{dataset}}/{{model}}/model.json",
        metrics=f"{R}/models/{{dataset}}/{{model}}/metrics.csv",
        snapshots=directory(f"{R}/models/{{dataset}}/{{model}}/snapshots"),
    log:
        f"{R}/logs/models/{{dataset}}/{{model}}/train.log",
    benchmark:
        f"{R}/benchmarks/models/{{dataset}}/{{model}}/train.tsv"
    wildcard_constraints:
        model=GRID_NAMES,
    conda:
        "../envs/torch.yaml"
    threads: config["models"]["resources"]["threads"]
    resources:
        gpu=config["models"]["resources"]["gpu"],
        mem_mb=by_attempt(config["models"]["resources"]["mem_mb"]),
        runtime=by_attempt(config["models"]["resources"]["runtime"]),
    params:
        settings=train_settings,
        checkpoint=checkpoint_dir,
    script:
        "../scripts/train_model.py"


rule register_external:
    input:
        data=f"{R}/data/{{dataset}}/dataset.npz",
    output:
        model=f"{R}/models/{{dataset}}/{{model}}/model.pt",
        info=f"{R}/models/{{dataset}}/{{model}}/model.json",
    log:
        f"{R}/logs/models/{{dataset}}/{{model}}/register.log",
    wildcard_constraints:
        model=EXTERNAL_NAMES,
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(10),
    params:
        external=external_settings,
    script:
        "../scripts/register_external.py"


rule evaluate_model:
    input:
        data=f"{R}/data/{{dataset}}/dataset.npz",
        model=f"{R}/models/{{dataset}}/{{model}}/model.pt",
        info=f"{R}/models/{{dataset}}/{{model}}/model.json",
    output:
        evaluation=f"{R}/models/{{dataset}}/{{model}}/eval.json",
    log:
        f"{R}/logs/models/{{dataset}}/{{model}}/eval.log",
    benchmark:
        f"{R}/benchmarks/models/{{dataset}}/{{model}}/eval.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["models"]["resources"]["threads"]
    resources:
        gpu=config["models"]["resources"]["gpu"],
        mem_mb=by_attempt(config["models"]["resources"]["mem_mb"]),
        runtime=by_attempt(config["models"]["resources"]["runtime"]),
    params:
        evaluation=config["models"]["eval"],
    script:
        "../scripts/evaluate_model.py"


rule models_table:
    input:
        evaluations=expand(f"{R}/models/{{model_id}}/eval.json", model_id=ALL_MODEL_IDS),
        infos=expand(f"{R}/models/{{model_id}}/model.json", model_id=ALL_MODEL_IDS),
    output:
        table=f"{R}/models/models.csv",
    log:
        f"{R}/logs/models/models_table.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/models_table.py"


rule models:
    input:
        rules.models_table.output.table,
