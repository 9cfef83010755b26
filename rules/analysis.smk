# Stage 5: scores -> the paper's claims (statistics and a plain-text summary),
# human-free proxies, tables and figures, each with a caption in the report
# (snakemake --report results/report.html; made after every successful run).
include: "analysis_common.smk"


# --- SimCLR checkpoints: IRIs of every training snapshot, judged -------------------
# One job per SimCLR model: every snapshot's IRI set in one folder
# (CHECKPOINT_DIR/<dataset>/<model>/epoch<NNNN>/), with the job's loss curve
# and provenance.


rule checkpoint_iris:
    input:
        data=f"{R}/data/{{dataset}}/dataset.npz",
        targets=f"{R}/targets/{{dataset}}/targets.npz",
        snapshots=f"{R}/models/{{dataset}}/{{model}}/snapshots",
        info=f"{R}/models/{{dataset}}/{{model}}/model.json",
    output:
        sets=directory(f"{CHECKPOINT_DIR}/{{dataset}}/{{model}}"),
    log:
        f"{R}/logs/analysis/checkpoints/{{dataset}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/analysis/checkpoints/{{dataset}}/{{model}}.tsv"
    wildcard_constraints:
        model=GRID_NAMES,
    conda:
        "../envs/torch.yaml"
    threads: config["iris"]["resources"]["threads"]
    resources:
        gpu=config["iris"]["resources"]["gpu"],
        mem_mb=by_attempt(config["iris"]["resources"]["mem_mb"]),
        runtime=by_attempt(config["iris"]["resources"]["runtime"]),
    params:
        settings=checkpoint_iri_settings(),
        checkpoints={k: CKPT[k] for k in ("layer", "loss", "seed_type")},
        epochs=checkpoint_job_epochs,
    script:
        "../scripts/checkpoint_iris.py"


rule checkpoint_judgments:
    input:
        sets=checkpoint_sets(),
        calibration=sorted(
            {f"{R}/judgments/observers/{s.model_id.split('/')[0]}/calibration.json" for s in CHECKPOINT_SERIES}
        ),
    output:
        trials=f"{R}/analysis/checkpoints/trials.csv",
        responses=f"{R}/analysis/checkpoints/responses.csv",
        proxy=f"{R}/analysis/checkpoints/proxy_2afc.csv",
    log:
        f"{R}/logs/analysis/checkpoint_judgments.log",
    benchmark:
        f"{R}/benchmarks/analysis/checkpoint_judgments.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        epochs=[s.epoch for s in CHECKPOINT_SERIES],
        paths=[s.path for s in CHECKPOINT_SERIES],
        judgments=trial_settings(config),
        proxy_metrics=ANALYSIS["proxy"]["metrics"],
        min_catch_correct=config["judgments"]["observers"]["real"]["min_catch_correct"],
    script:
        "../scripts/checkpoint_judgments.py"


# --- proxies and scores --------------------------------------------------------------


rule proxy_scores:
    input:
        iris=iri_outputs("iris.npz"),
        trials=JUDGMENT_TABLES["trials"],
        models=expand(f"{R}/models/{{model_id}}/model.pt", model_id=ALL_MODEL_IDS),
        infos=expand(f"{R}/models/{{model_id}}/model.json", model_id=ALL_MODEL_IDS),
    output:
        proxy=f"{R}/analysis/proxies/proxy_2afc.csv",
        stir=f"{R}/analysis/proxies/stir.csv",
    log:
        f"{R}/logs/analysis/proxy_scores.log",
    benchmark:
        f"{R}/benchmarks/analysis/proxy_scores.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=config["iris"]["resources"]["gpu"],
        mem_mb=by_attempt(config["iris"]["resources"]["mem_mb"]),
        runtime=by_attempt(config["iris"]["resources"]["runtime"]),
    params:
        metrics=ANALYSIS["proxy"]["metrics"],
        stir=ANALYSIS["stir"],
    script:
        "../scripts/proxy_scores.py"


# torch env: the crossed bootstrap is iriflow.judgments', which imports torch
rule model_scores:
    input:
        **JUDGMENT_TABLES,
        **CHECKPOINT_TABLES,
    output:
        models=f"{R}/analysis/scores/models.csv",
        checkpoints=f"{R}/analysis/scores/checkpoints.csv",
    log:
        f"{R}/logs/analysis/model_scores.log",
    benchmark:
        f"{R}/benchmarks/analysis/model_scores.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(30),
    params:
        models=model_design(config),
        bootstrap=ANALYSIS["bootstrap"],
    script:
        "../scripts/model_scores.py"


rule statistics:
    input:
        **JUDGMENT_TABLES,
        **CHECKPOINT_TABLES,
        checkpoint_scores=rules.model_scores.output.checkpoints,
        proxy=rules.proxy_scores.output.proxy,
        stir=rules.proxy_scores.output.stir,
    output:
        tests=report(f"{STATS}/tests.csv", caption="../report/tests.rst", category="Findings"),
        contrasts=report(f"{STATS}/contrasts.csv", caption="../report/contrasts.rst", category="Findings"),
        coefficients=f"{STATS}/coefficients.csv",
        agreement=report(f"{STATS}/agreement.csv", caption="../report/agreement.rst", category="Findings"),
        findings=report(f"{STATS}/findings.csv", caption="../report/findings.rst", category="Findings"),
        summary=f"{R}/analysis/summary.txt",
        summary_html=report(f"{R}/analysis/summary.html", caption="../report/summary.rst", category="Findings"),
    log:
        f"{R}/logs/analysis/statistics.log",
    benchmark:
        f"{R}/benchmarks/analysis/statistics.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(30),
    params:
        analysis={k: ANALYSIS[k] for k in ("alpha", "bootstrap", "interactions", "factors", "primary")},
        models=model_design(config),
        iris={k: config["iris"][k] for k in ("losses", "seed_types", "loss_defs", "layers")},
        observers=OBSERVERS,
    script:
        "../scripts/findings.py"


# --- tables ---------------------------------------------------------------------------


rule alignment_table:
    input:
        scores=rules.model_scores.output.models,
    output:
        csv=report(f"{TABLES}/alignment.csv", caption="../report/alignment_table.rst", category="Tables"),
        markdown=f"{TABLES}/alignment.md",
        latex=f"{TABLES}/alignment.tex",
        html=report(f"{TABLES}/alignment.html", caption="../report/alignment_table.rst", category="Tables"),
    log:
        f"{R}/logs/analysis/alignment_table.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        primary=ANALYSIS["primary"],
        levels=LEVELS,
        observers=OBSERVERS,
    script:
        "../scripts/alignment_table.py"


rule proxy_table:
    input:
        proxy=rules.proxy_scores.output.proxy,
        stir=rules.proxy_scores.output.stir,
    output:
        csv=report(f"{TABLES}/proxies.csv", caption="../report/proxy_table.rst", category="Tables"),
        markdown=f"{TABLES}/proxies.md",
        html=report(f"{TABLES}/proxies.html", caption="../report/proxy_table.rst", category="Tables"),
    log:
        f"{R}/logs/analysis/proxy_table.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        levels=LEVELS,
    script:
        "../scripts/proxy_table.py"


# --- figures: one rule each, PDF and PNG (the PNG goes into the report) --------------


rule figure_iri_grids:
    input:
        iris=[
            f"{R}/iris/{m}/{config['iris']['layers'][0]}/{loss}/{EXAMPLE_SEED_TYPE}/iris.npz"
            for loss in config["iris"]["losses"]
            for m in EXAMPLE_MODELS
        ],
    output:
        png=report(f"{FIG}/iri_grids.png", caption="../report/iri_grids.rst", category="Figures"),
        pdf=f"{FIG}/iri_grids.pdf",
    log:
        f"{R}/logs/figures/iri_grids.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=EXAMPLE_MODELS,
        losses=config["iris"]["losses"],
        n=ANALYSIS["examples"]["n"],
        seed_type=EXAMPLE_SEED_TYPE,
    script:
        "../scripts/figure_iri_grids.py"


rule figure_alignment:
    input:
        scores=rules.model_scores.output.models,
    output:
        png=report(f"{FIG}/alignment.png", caption="../report/alignment.rst", category="Figures"),
        pdf=f"{FIG}/alignment.pdf",
    log:
        f"{R}/logs/figures/alignment.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        primary=ANALYSIS["primary"],
        levels=LEVELS,
    script:
        "../scripts/figure_alignment.py"


rule figure_adversarial:
    input:
        scores=rules.model_scores.output.models,
    output:
        png=report(
            f"{FIG}/alignment_adversarial.png", caption="../report/alignment_adversarial.rst", category="Figures"
        ),
        pdf=f"{FIG}/alignment_adversarial.pdf",
    log:
        f"{R}/logs/figures/alignment_adversarial.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        losses=[l for l in config["iris"]["losses"] if config["iris"]["loss_defs"][l]["kind"] == "adversarial"],
        levels=LEVELS,
    script:
        "../scripts/figure_adversarial.py"


rule figure_checkpoints:
    input:
        scores=rules.model_scores.output.checkpoints,
        alignment=rules.score_alignment.output.alignment,
    output:
        png=report(f"{FIG}/simclr_checkpoints.png", caption="../report/simclr_checkpoints.rst", category="Figures"),
        pdf=f"{FIG}/simclr_checkpoints.pdf",
    log:
        f"{R}/logs/figures/simclr_checkpoints.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        primary=ANALYSIS["primary"],
        checkpoints=CKPT,
        levels=LEVELS,
        models=model_design(config),
    script:
        "../scripts/figure_checkpoints.py"


rule figure_accuracy:
    input:
        models=rules.models_table.output.table,
    output:
        png=report(f"{FIG}/accuracy.png", caption="../report/accuracy.rst", category="Figures"),
        pdf=f"{FIG}/accuracy.pdf",
    log:
        f"{R}/logs/figures/accuracy.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        attacks=config["models"]["eval"]["attacks"],
        levels=LEVELS,
        models=model_design(config),
    script:
        "../scripts/figure_accuracy.py"


rule figure_proxies:
    input:
        alignment=rules.score_alignment.output.alignment,
        proxy=rules.proxy_scores.output.proxy,
        stir=rules.proxy_scores.output.stir,
    output:
        png=report(f"{FIG}/proxy_vs_observer.png", caption="../report/proxy_vs_observer.rst", category="Figures"),
        pdf=f"{FIG}/proxy_vs_observer.pdf",
    log:
        f"{R}/logs/figures/proxy_vs_observer.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        primary=ANALYSIS["primary"],
        levels=LEVELS,
    script:
        "../scripts/figure_proxies.py"


# The power planner: simulated studies of the survey's design, fitted like the
# statistics rule (README "Power").
rule power:
    input:
        trials=JUDGMENT_TABLES["trials"],
        responses=JUDGMENT_TABLES["responses"],
        validity=JUDGMENT_TABLES["validity"],
    output:
        csv=report(f"{TABLES}/power.csv", caption="../report/power.rst", category="Power"),
        markdown=f"{TABLES}/power.md",
        png=report(f"{FIG}/power.png", caption="../report/power.rst", category="Power"),
        pdf=f"{FIG}/power.pdf",
    log:
        f"{R}/logs/analysis/power.log",
    benchmark:
        f"{R}/benchmarks/analysis/power.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    params:
        power=ANALYSIS["power"],
        analysis={k: ANALYSIS[k] for k in ("alpha", "bootstrap", "interactions", "factors", "primary")},
        models=model_design(config),
        iris={k: config["iris"][k] for k in ("losses", "seed_types", "loss_defs")},
        survey={k: config["survey"][k] for k in ("trials_per_participant", "catch_per_participant")},
        observers=OBSERVERS,
        levels=LEVELS,
    script:
        "../scripts/power.py"


FIGURES = [
    rules.figure_iri_grids.output.png,
    rules.figure_alignment.output.png,
    rules.figure_adversarial.output.png,
    rules.figure_checkpoints.output.png,
    rules.figure_accuracy.output.png,
    rules.figure_proxies.output.png,
    rules.power.output.png,
]
ANALYSIS_OUTPUTS = [
    rules.statistics.output.summary,
    rules.alignment_table.output.csv,
    rules.proxy_table.output.csv,
    rules.power.output.csv,
]


rule analysis:
    input:
        ANALYSIS_OUTPUTS,


rule figures:
    input:
        FIGURES,
        [f.replace(".png", ".pdf") for f in FIGURES],
        ANALYSIS_OUTPUTS,
