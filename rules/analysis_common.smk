# Stage 5 helpers (input functions, the snapshot series, the example pair,
# the report after a run), kept apart from the rules of rules/analysis.smk.
from collections import namedtuple

from iriflow.analysis import example_pair, preferred_levels  # noqa: E402
from iriflow.snapshots import snapshot_epochs  # noqa: E402

ANALYSIS = config["analysis"]
CKPT = ANALYSIS["checkpoints"]
FIG = f"{R}/figures"
TABLES = f"{R}/tables"
STATS = f"{R}/analysis/statistics"
LEVELS = preferred_levels(config)
OBSERVERS = LEVELS["observer"]  # observer kinds in config order (real first)


def checkpoint_iri_settings():
    """IRI settings of the snapshot IRIs: those of the IRI stage for CKPT's loss
    (a loss of iris.loss_defs or a registered kind, as validated)."""
    iris = config["iris"]
    loss = CKPT["loss"]
    spec = iris["loss_defs"].get(loss) or {"kind": loss}
    return iri_settings({**config, "iris": {**iris, "loss_defs": {**iris["loss_defs"], loss: spec}}}, loss)


Snapshot = namedtuple("Snapshot", ["model_id", "epoch", "path"])
# One checkpoint_iris job per SimCLR model writes the IRI sets of all of its
# snapshots into one folder: <model>/epoch<NNNN>/{iris.npz,iris.csv,grid.png}.
CHECKPOINT_DIR = f"{R}/analysis/checkpoints"


def checkpoint_series():
    """A Snapshot (model id, epoch, path of its iris.npz) of every snapshot of
    every SimCLR model. The last snapshot is the final network, whose IRIs the IRI stage
    already made when it covers CKPT's layer, loss and seed type: reused."""
    iris = config["iris"]
    reuse = (
        CKPT["layer"] in iris["layers"] and CKPT["loss"] in iris["losses"] and CKPT["seed_type"] in iris["seed_types"]
    )
    part = f"{CKPT['layer']}/{CKPT['loss']}/{CKPT['seed_type']}"
    series = []
    if not CKPT["enabled"]:
        return series
    for spec in MODELS:
        settings = model_settings(config, spec)
        if settings["objective"]["kind"] != "simclr":
            continue
        last = settings["recipe"]["epochs"]
        for epoch in snapshot_epochs(settings["recipe"]):
            path = (
                f"{R}/iris/{spec.id}/{part}/iris.npz"
                if reuse and epoch == last
                else f"{CHECKPOINT_DIR}/{spec.id}/epoch{epoch:04d}/iris.npz"
            )
            series.append(Snapshot(spec.id, epoch, path))
    return series


CHECKPOINT_SERIES = checkpoint_series()
# Per SimCLR model, the snapshot epochs whose IRIs checkpoint_iris makes (not
# the last one where the IRI stage's set is reused).
CHECKPOINT_JOBS = {}
for _s in CHECKPOINT_SERIES:
    if _s.path.startswith(CHECKPOINT_DIR):
        CHECKPOINT_JOBS.setdefault(_s.model_id, []).append(_s.epoch)


def checkpoint_job_epochs(wildcards):
    return CHECKPOINT_JOBS[f"{wildcards.dataset}/{wildcards.model}"]


def checkpoint_sets():
    """What checkpoint_judgments reads: the folder of each checkpoint_iris
    job and the reused sets of the IRI stage."""
    made = [f"{CHECKPOINT_DIR}/{m}" for m in CHECKPOINT_JOBS]
    return made + [s.path for s in CHECKPOINT_SERIES if not s.path.startswith(CHECKPOINT_DIR)]


CHECKPOINT_TABLES = (
    {
        "checkpoint_trials": [f"{R}/analysis/checkpoints/trials.csv"],
        "checkpoint_responses": [f"{R}/analysis/checkpoints/responses.csv"],
    }
    if CHECKPOINT_SERIES
    else {"checkpoint_trials": [], "checkpoint_responses": []}
)
JUDGMENT_TABLES = {
    "trials": expand(f"{R}/judgments/{{model_id}}/trials.csv", model_id=ALL_MODEL_IDS),
    "responses": expand(f"{R}/judgments/{{model_id}}/responses_simulated.csv", model_id=ALL_MODEL_IDS),
    "real": config["judgments"]["observers"]["real"]["responses"],
    "key": SURVEY_KEY,  # the survey's key file (rules/judgments.smk), [] when not set
    "exclusions": f"{R}/judgments/exclusions.json",
    # each simulated observer counts only where it passed its check (iriflow.findings.apply_validity)
    "validity": sorted({f"{R}/judgments/observers/{m.split('/')[0]}/validity.csv" for m in ALL_MODEL_IDS}),
}


EXAMPLE_MODELS = (
    [ANALYSIS["examples"]["standard"], ANALYSIS["examples"]["robust"]]
    if ANALYSIS["examples"]["standard"] and ANALYSIS["examples"]["robust"]
    else example_pair(ALL_MODEL_IDS, config["models"], LEVELS)
)
EXAMPLE_SEED_TYPE = ANALYSIS["examples"]["seed_type"] or config["iris"]["seed_types"][0]


def write_report():
    """snakemake --report {R}/report.html, run after a successful run (the
    Snakefile's onsuccess) when every figure and table exists; the same
    Snakefile, working directory and (validated) config as this run. A
    failure is reported, never fatal: the results are already there."""
    import subprocess

    import yaml

    if not ANALYSIS["report"]:
        return
    files = [
        str(f)
        for f in [
            *rules.figures.input,
            *rules.statistics.output,
            *rules.alignment_table.output,
            *rules.proxy_table.output,
            *rules.power.output,
            *RSA_TARGETS,
        ]
    ]
    if not all(os.path.exists(f) for f in files):
        return
    cfg_path = Path(R) / "logs" / "report" / "config.yaml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    log_path = cfg_path.with_name("report.log")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        workflow.main_snakefile,
        "-d",
        os.getcwd(),
        "--configfile",
        str(cfg_path),
        "--report",
        f"{R}/report.html",
    ]
    with open(log_path, "w") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode == 0
    print(f"report: {R}/report.html" if done else f"report: snakemake --report failed, see {log_path}", file=sys.stderr)
