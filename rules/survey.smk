# Stage 4b: the browser survey, a self-contained folder (site/) to host or open
# from file://, and beside it the key (screen -> trial, condition, answer) and
# the participants' links (see README, "Browser survey"). Not part of `all`: it
# needs npm (the registry, or npm's cache) to fetch the jsPsych builds pinned
# in survey/.

SURVEY_SRC = os.path.join(workflow.basedir, "survey")


rule export_survey:
    input:
        trials=expand(f"{R}/judgments/{{model_id}}/trials.csv", model_id=ALL_MODEL_IDS),
        iris=iri_outputs("iris.npz"),
        features=judged_feature_sets(),  # feature-2afc trials
        # the script finds the survey sources next to package.json
        package=os.path.join(SURVEY_SRC, "package.json"),
        app=expand(
            os.path.join(SURVEY_SRC, "{name}"),
            name=["package-lock.json", "src/index.html", "src/survey.js", "src/survey.css"],
        ),
    output:
        survey=directory(f"{R}/survey/site"),
        key=f"{R}/survey/key.csv",
        links=f"{R}/survey/links.csv",
    log:
        f"{R}/logs/survey/export_survey.log",
    conda:
        "../envs/survey.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        survey=config["survey"],
    script:
        "../scripts/export_survey.py"


rule survey:
    input:
        rules.export_survey.output.survey,
        rules.export_survey.output.key,
