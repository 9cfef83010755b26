# Stage 4: trials per IRI set, answered by simulated observers (and by real
# ones, from judgments.observers.real.responses), and the alignment scores
# (% correct with crossed bootstrap CIs).


# Each simulated observer's decision noise, anchored to a point of a
# psychometric function (a change to the validation below recalibrates
# nothing, so the observers' answers stay as they are).
rule calibrate_observers:
    input:
        targets=rules.select_targets.output.targets,
    output:
        calibration=f"{R}/judgments/observers/{{dataset}}/calibration.json",
    log:
        f"{R}/logs/judgments/{{dataset}}/calibrate_observers.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        observers=config["judgments"]["observers"]["simulated"],
        repeats=config["judgments"]["observers"]["validation"]["repeats"],
        seed=config["judgments"]["seed"],
    script:
        "../scripts/calibrate_observers.py"


# The psychometric curves of the observers and of candidate metrics, and each
# observer's validity per trial kind and seed type (validity.csv: it is used
# only where it passed).
rule validate_observers:
    input:
        targets=rules.select_targets.output.targets,
        data=rules.prepare_dataset.output.data,  # the pool of other-image seeds
        calibration=rules.calibrate_observers.output.calibration,
    output:
        curves=f"{R}/judgments/observers/{{dataset}}/psychometric.csv",
        figure=f"{R}/judgments/observers/{{dataset}}/psychometric.png",
        validity=f"{R}/judgments/observers/{{dataset}}/validity.csv",
    log:
        f"{R}/logs/judgments/{{dataset}}/validate_observers.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        observers=[observer_name(o) for o in config["judgments"]["observers"]["simulated"]],
        validation=config["judgments"]["observers"]["validation"],
        seed=config["judgments"]["seed"],
        trials={k: config["judgments"][k] for k in ("alternatives", "matching_k")},
        seed_types=config["iris"]["seed_types"],
        iri_seed=config["iris"]["seed"],
        feature_seed_type=(config["engstrom"]["features"]["seed_type"] if config["engstrom"]["enabled"] else None),
    script:
        "../scripts/validate_observers.py"


# One job per model covers all of its IRI sets (layers x losses x seed types):
# the work is seconds, a job per set would mostly be interpreter start-up.
rule simulate_judgments:
    input:
        iris=model_iri_sets,
        features=model_feature_set,  # feature-2afc trials (rules/engstrom.smk)
        calibration=rules.calibrate_observers.output.calibration,
    output:
        trials=f"{R}/judgments/{{dataset}}/{{model}}/trials.csv",
        responses=f"{R}/judgments/{{dataset}}/{{model}}/responses_simulated.csv",
    log:
        f"{R}/logs/judgments/{{dataset}}/{{model}}.log",
    wildcard_constraints:
        model=MODEL_NAMES,
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        judgments=trial_settings(config),
    script:
        "../scripts/simulate_judgments.py"


# Real observers' response files (survey exports or generic CSVs) against the
# trials tables, in a step of its own. The run's planning already checked each
# file's format, and its trials too when the trials tables existed then (the
# usual case: the survey is made from them); when they are made in this run,
# a bad file stops the run here, and score_alignment's outputs of an earlier
# run stay as they are (Snakemake deletes only a failed job's outputs).
# The survey's key file: what each screen of the survey's own response files was.
SURVEY_KEY = (
    [config["judgments"]["observers"]["real"]["key"]] if config["judgments"]["observers"]["real"]["key"] else []
)


rule check_responses:
    input:
        trials=TRIALS_TABLES,
        real=config["judgments"]["observers"]["real"]["responses"],
        key=SURVEY_KEY,
    output:
        checked=f"{R}/judgments/real_responses.json",
    log:
        f"{R}/logs/judgments/check_responses.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(10),
    script:
        "../scripts/check_responses.py"


rule score_alignment:
    input:
        trials=TRIALS_TABLES,
        responses=expand(f"{R}/judgments/{{model_id}}/responses_simulated.csv", model_id=ALL_MODEL_IDS),
        real=config["judgments"]["observers"]["real"]["responses"],
        key=SURVEY_KEY,
        checked=(rules.check_responses.output.checked if config["judgments"]["observers"]["real"]["responses"] else []),
    output:
        alignment=f"{R}/judgments/alignment.csv",
        exclusions=f"{R}/judgments/exclusions.json",
    log:
        f"{R}/logs/judgments/score_alignment.log",
    conda:
        "../envs/analysis.yaml"  # scores answers (iriflow.scoring): no torch
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(30),
    params:
        bootstrap=config["analysis"]["bootstrap"],
        min_catch_correct=config["judgments"]["observers"]["real"]["min_catch_correct"],
        external=config["models"]["external"],
    script:
        "../scripts/score_alignment.py"


rule judgments:
    input:
        rules.score_alignment.output.alignment,
