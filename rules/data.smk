# Stage 1: datasets in one prepared form, and the IRI targets.


rule prepare_dataset:
    output:
        data=f"{R}/data/{{dataset}}/dataset.npz",
        meta=f"{R}/data/{{dataset}}/meta.json",
        provenance=f"{R}/data/{{dataset}}/provenance.json",
    log:
        f"{R}/logs/data/{{dataset}}.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(30),
    params:
        data=lambda w: dataset_settings(config, w.dataset),
    script:
        "../scripts/prepare_data.py"


rule select_targets:
    input:
        data=rules.prepare_dataset.output.data,
    output:
        targets=f"{R}/targets/{{dataset}}/targets.npz",
        sheet=f"{R}/targets/{{dataset}}/targets.png",
        provenance=f"{R}/targets/{{dataset}}/provenance.json",
    log:
        f"{R}/logs/targets/{{dataset}}.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(10),
    params:
        targets=config["targets"],
    script:
        "../scripts/select_targets.py"


rule data:
    input:
        data_outputs(),
