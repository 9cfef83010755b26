"""The browser survey end to end on a small fake results tree (two IRI sets
of one model): the export (rule export_survey and iriflow.survey), a
headless Chromium taking the survey as participants do, and the import of
what it downloads (or POSTs) into scoring (load_responses, score, and the
rule score_alignment with judgments.observers.real.responses).

Needs npm (the export fetches the jsPsych builds pinned in survey/) and, for
the browser tests, Debian's chromium: the session fixture installs it with
apt-get when missing and running as root; where that is impossible the tests
fail under CI (the environment variable CI is set) and are skipped otherwise."""

from __future__ import annotations

import csv
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import ROOT, run_snakemake
from iriflow.iriset import IRISet
from iriflow.judgments import build_trials, score, simulate_population
from iriflow.responses import load_responses
from iriflow.survey import (
    ASSETS,
    SurveyError,
    assign_list,
    check_post_url,
    embed_json,
    export_survey,
    fnv1a32,
    make_lists,
    read_embedded_data,
    render_page,
)
from iriflow.viz import to_uint8

MODEL = "mnist5k/resnet18-ce-none-s0"
LOSSES = ("regfree", "adversarial")
SETS = [f"{MODEL}/penultimate/{loss}/other-image" for loss in LOSSES]
PACKAGE = ROOT / "survey"  # package.json and package-lock.json of the survey page
N = 6
LABELS = np.array([0, 1, 2, 0, 1, 2])
CONVERGED = {SETS[0]: np.ones(N, bool), SETS[1]: np.array([1, 1, 1, 1, 1, 0], bool)}
SURVEY = {"trials_per_participant": 8, "catch_per_participant": 2, "seed": 0}
SMALL = {
    "models": {
        "grid": [
            {
                "datasets": ["mnist5k"],
                "archs": ["resnet18"],
                "objectives": ["ce"],
                "augmentations": ["none"],
                "seeds": [0],
            }
        ]
    },
    "iris": {"losses": list(LOSSES), "seed_types": ["other-image"]},
    "judgments": {"matching_k": 3, "n_catch": 2},
    "survey": SURVEY,
    "analysis": {"bootstrap": {"n": 50}},
    "engstrom": {"enabled": False},  # no feature-visualisation sets in the fake tree
}
CHROMIUM = "/usr/bin/chromium"
# Without these Chromium stalls on a machine without network access.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str):
    """Fail under CI (where the tools must be there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (failing because CI is set)")
    pytest.skip(reason)


# --- a fake results tree -------------------------------------------------------


def fake_images(rng, n=N, size=12):
    """Distinct random grey images whose values survive the uint8 round trip."""
    return (rng.integers(0, 256, (n, 1, size, size)) / 255.0).astype(np.float32)


def make_results(work: Path) -> dict:
    """The IRI sets (iris.npz) of two sets (shared targets, as for one model),
    the model's trials.csv and simulated responses. Returns {set_id: images}."""
    rng = np.random.default_rng(0)
    targets = fake_images(rng)
    images, tables = {}, []
    for set_id in SETS:
        iri_set = IRISet(
            set_id,
            iris=fake_images(rng),
            seeds=fake_images(rng),
            targets=targets,
            target_index=np.arange(N),
            target_label=LABELS,
            rel_dist=np.zeros(N),
            loss=np.zeros(N),
            converged=CONVERGED[set_id],
            settings={"metric": "ms_ssim", "loss_spec": {"kind": set_id.split("/")[3]}},
        )
        iri_set.save(work / "results/iris" / set_id / "iris.npz")
        images[set_id] = iri_set.images()
        tables.append(build_trials(N, LABELS, CONVERGED[set_id], matching_k=3, n_catch=2, seed=0, set_id=set_id))
    trials = pd.concat(tables, ignore_index=True)
    out = work / "results/judgments" / MODEL
    out.mkdir(parents=True)
    trials.to_csv(out / "trials.csv", index=False)
    d = rng.random((len(trials), trials["n_options"].max()))
    d[np.arange(d.shape[1]) >= trials["n_options"].to_numpy()[:, None]] = np.nan
    sim = simulate_population(
        trials, d, n_participants=5, sigma=0.2, sigma_spread=0.3, lapse=0.02, seed=0, observer="simulated:gmsd"
    )
    sim.to_csv(out / "responses_simulated.csv", index=False)
    return images


@pytest.fixture(scope="module")
def npm_available():
    if shutil.which("npm") is None:
        unavailable("npm is not installed (the survey export fetches jsPsych with it)")


@pytest.fixture(scope="module")
def fake(tmp_path_factory, npm_available):
    """The fake tree, exported with `snakemake survey`."""
    work = tmp_path_factory.mktemp("survey")
    images = make_results(work)
    cfg = work / "small.yaml"
    cfg.write_text(yaml.safe_dump(SMALL))
    config = ["--configfile", str(ROOT / "config/config.yaml"), str(cfg)]
    # only the rules under test: the fake tree has no models, data or calibration behind it
    proc = run_snakemake(
        "survey", "--allowed-rules", "export_survey", "survey", "--cores", "1", "-d", str(work), *config
    )
    trials = pd.read_csv(work / "results/judgments" / MODEL / "trials.csv", keep_default_na=False)
    return {
        "work": work,
        "images": images,
        "trials": trials,
        "config": config,
        "proc": proc,
        "folder": work / "results/survey",
        "data": read_embedded_data(work / "results/survey/index.html"),
    }


def decode(path: Path) -> np.ndarray:
    arr = np.asarray(Image.open(path))
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


# --- the exported folder -------------------------------------------------------


def test_export_folder_content(fake):
    folder, data = fake["folder"], fake["data"]
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    files.discard(".snakemake_timestamp")  # Snakemake's marker in directory outputs
    stimuli = {f for f in files if f.startswith("stimuli/")}
    assert files - stimuli == {"index.html", "survey.js", "survey.css", "NOTICE.txt", *ASSETS}
    # content-hash names that say nothing about the image's role
    assert all(re.fullmatch(r"stimuli/[0-9a-f]{20}\.png", f) for f in stimuli)
    shown = {t["query"] for t in data["trials"]} | {o for t in data["trials"] for o in t["options"]}
    assert shown == stimuli
    # the targets are shared by the two sets: one file each, not one per set
    refs = {(r.set_id, ref) for r in fake["trials"].itertuples() for ref in [r.query, *r.options.split("|")]}
    assert len(stimuli) < len(refs)
    # the jsPsych build pinned by survey/package-lock.json
    lock = json.loads((ROOT / "survey/package-lock.json").read_text())
    assert lock["packages"]["node_modules/jspsych"]["version"] == "8.3.0"
    assert 'We="8.3.0"' in (folder / "jspsych/jspsych.js").read_text()
    assert "jspsych 8.3.0" in (folder / "NOTICE.txt").read_text()
    assert (folder / "survey.js").read_bytes() == (ROOT / "survey/src/survey.js").read_bytes()
    page = (folder / "index.html").read_text()
    assert "connect-src 'none'" in page  # no post_url: the page may not send anything anywhere
    assert "catch" not in json.dumps([{k: v for k, v in t.items() if k != "trial_id"} for t in data["trials"]])
    log = (fake["work"] / "results/logs/survey/export_survey.log").read_text()
    assert f"survey {data['survey_id']}: 35 trials (4 catch) from 2 IRI sets" in log


def test_embedded_trials_equal_the_trials_table(fake):
    trials, data = fake["trials"], fake["data"]
    # set A: 12 2AFC + 2 matching groups of 3 + 2 catch; set B (5 converged): 10 + 1 group of 3 + 2
    assert len(trials) == 35 and len(data["trials"]) == 35
    assert [t["trial_id"] for t in data["trials"]] == trials["trial_id"].tolist()
    assert [t["set_id"] for t in data["trials"]] == trials["set_id"].tolist()
    assert [len(t["options"]) for t in data["trials"]] == trials["n_options"].tolist()
    assert set().union(*map(set, data["trials"])) == {"trial_id", "set_id", "query", "options", "px", "question"}
    assert {t["question"] for t in data["trials"]} == {"similar"}  # no feature-2afc trials here
    assert {t["px"] for t in data["trials"]} == {168}  # 12 px images at 14x
    assert data["post_url"] == "" and data["order_seed"] == 0 and data["format"] == 1


def test_stimuli_decode_to_the_set_images(fake):
    folder, images = fake["folder"], fake["images"]
    for row, rec in zip(fake["trials"].itertuples(), fake["data"]["trials"]):
        for ref, src in zip([row.query, *row.options.split("|")], [rec["query"], *rec["options"]]):
            kind, _, i = ref.partition(":")
            expected = to_uint8(images[row.set_id][kind][int(i)][None])[0]
            np.testing.assert_array_equal(decode(folder / src), expected, err_msg=f"{row.trial_id} {ref}")


def test_lists_of_the_export(fake):
    trials, data = fake["trials"], fake["data"]
    lists = data["lists"]
    assert lists == make_lists(trials, **SURVEY)
    # 31 judgments over ceil(31 / (8 - 2)) = 6 lists, plus 2 catch trials each
    assert len(lists) == 6 and sorted(map(len, lists)) == [7, 7, 7, 7, 7, 8]
    kinds = trials["kind"].to_numpy()
    assert all((kinds[m] == "catch").sum() == 2 for m in lists)


def test_participant_lists_are_balanced_and_cover_every_trial():
    labels = np.arange(40) % 8
    trials = pd.concat(
        [build_trials(40, labels, np.arange(40) % 7 != 0, n_catch=5, seed=s, set_id=f"S{s}") for s in range(3)],
        ignore_index=True,
    )
    lists = make_lists(trials, 25, 4, seed=1)
    main = np.flatnonzero(trials["kind"] != "catch")
    n_lists = -(-len(main) // 21)
    assert len(lists) == n_lists and all(len(m) <= 25 for m in lists)
    members = np.concatenate(lists)
    judged = members[trials["kind"].to_numpy()[members] != "catch"]
    assert sorted(judged) == sorted(main)  # every judgment trial in exactly one list
    assert max(map(len, lists)) - min(map(len, lists)) <= 1
    for _, rows in trials.iloc[main].groupby(["set_id", "kind", "alternative"]):
        counts = [len(set(rows.index) & set(m)) for m in lists]
        assert max(counts) - min(counts) <= 1  # each condition spread evenly
    catch = [sorted(i for i in m if trials["kind"].iloc[i] == "catch") for m in lists]
    assert all(len(c) == len(set(c)) == 4 for c in catch)
    used = np.bincount(np.concatenate(catch), minlength=len(trials))[trials["kind"] == "catch"]
    assert used.max() - used.min() <= 1  # catch trials used in turn
    assert make_lists(trials, 25, 4, seed=1) == lists and make_lists(trials, 25, 4, seed=2) != lists
    # a pool smaller than a list: one list with everything
    small = trials.iloc[:30]
    assert make_lists(small, 100, 4, seed=0) == [list(range(30))]
    with pytest.raises(SurveyError, match="must exceed"):
        make_lists(trials, 4, 4, seed=0)


def test_list_assignment_hash():
    # FNV-1a 32-bit reference values (the same function as survey.js)
    assert fnv1a32("") == 0x811C9DC5 and fnv1a32("a") == 0xE40C292C and fnv1a32("foobar") == 0xBF9CF968
    counts = np.bincount([assign_list(f"P{i:04d}", 7) for i in range(7000)], minlength=7)
    assert counts.min() > 850  # roughly uniform
    with pytest.raises(SurveyError):
        assign_list("<b>x</b>", 3)


def test_page_embedding_is_inert():
    nasty = "</script><script>alert(1)</script><!--"
    data = {"title": nasty, "post_url": "", "consent": [nasty], "trials": []}
    template = (
        '<title>{{TITLE}}</title><meta content="connect-src {{CSP_CONNECT}}">'
        '<script type="application/json" id="survey-data">{{DATA}}</script>'
    )
    page = render_page(template, data)
    assert page.count("</script>") == 1 and "<!--" not in page and "<script>" not in page
    assert page.startswith("<title>&lt;/script&gt;")
    assert json.loads(embed_json(data)) == data
    # one pass: a value that looks like a placeholder stays as it is
    assert render_page(template, {**data, "title": "{{DATA}}"}).startswith("<title>{{DATA}}</title>")


def test_post_url_is_checked():
    assert check_post_url("") == ""
    assert check_post_url("https://example.org:8443/iri/submit?study=1") == "https://example.org:8443"
    for bad in (
        "javascript:alert(1)",
        "ftp://x.org/a",
        "https://",
        "https://x.org/a b",
        "https://x.org/'; script-src *",
    ):
        with pytest.raises(SurveyError):
            check_post_url(bad)


def test_no_participant_text_reaches_html():
    """survey.js writes the page only through textContent and DOM nodes; the
    HTML strings it gives jsPsych are built from the exported data and config
    (HTML-escaped), never from the participant's code or the URL."""
    js = (ROOT / "survey/src/survey.js").read_text()
    code = re.sub(r"/\*.*?\*/", "", js, flags=re.S)
    code = "\n".join(line.split("//")[0] for line in code.splitlines())
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "Function(",
        'setTimeout("',
        "srcdoc",
    ):
        assert sink not in code, sink
    # the participant's text: only compared, hashed, stored as data or shown with textContent
    tainted = ("state.participant", "urlParticipant", "urlList", "answer.participant", "code")
    for line in code.splitlines():
        names = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)  # identifiers only, not words in strings
        if any(re.search(rf"\b{re.escape(t)}\b", names) for t in tainted):
            assert "<" not in line.replace("< data.lists", ""), line
    assert "PARTICIPANT_RE = /^[A-Za-z0-9_-]{1,64}$/" in code
    assert re.search(r"state\.participant = code;", code) and "PARTICIPANT_RE.test(code)" in code
    # every experimenter string inserted into an HTML string is escaped
    for name in ("data.title", "p)", "src"):
        assert f"esc({name}" in code


def test_export_refuses_bad_settings(tmp_path, fake):
    trials = fake["trials"]
    images = fake["images"]
    settings = {**SURVEY, "post_url": "", "image_px": 168, "title": "t", "consent": ["c"]}
    with pytest.raises(SurveyError, match="post_url"):
        export_survey(
            trials, images.__getitem__, tmp_path / "s", {**settings, "post_url": "data:x"}, package_dir=PACKAGE
        )
    dup = pd.concat([trials, trials.iloc[:1]], ignore_index=True)
    with pytest.raises(SurveyError, match="more than once"):
        export_survey(dup, images.__getitem__, tmp_path / "s", settings, package_dir=PACKAGE)
    with pytest.raises(SurveyError, match="not in its IRI set"):
        export_survey(trials.assign(query="iri:99"), images.__getitem__, tmp_path / "s", settings, package_dir=PACKAGE)
    assert not (tmp_path / "s").exists()


# --- taking the survey in a browser --------------------------------------------


def _chromium_ready() -> str | None:
    """Why Chromium cannot be used, or None."""
    if Path(CHROMIUM).exists():
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"{CHROMIUM} is missing and installing it needs root (apt-get install chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed: {(proc.stdout + proc.stderr).strip()[-1500:]}"
    return None if Path(CHROMIUM).exists() else f"apt-get installed chromium but {CHROMIUM} is missing"


@pytest.fixture(scope="session")
def browser():
    problem = _chromium_ready()
    if problem:
        unavailable(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Participant:
    """Takes the survey in a fresh browser context. ``policy(query, options)``
    returns the index to click; each screen is logged as (query, options,
    clicked) with the image file names as the page shows them."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.set_default_timeout(15000)
        self.page.goto(url)
        self.screens: list[tuple[str, list[str], int]] = []

    def consent_and_instructions(self):
        self.page.get_by_role("button", name="I agree").click()
        for _ in range(2):
            self.page.click("#jspsych-instructions-next")

    def enter_code(self, code: str):
        self.page.fill("#iri-participant", code)
        self.page.click("#jspsych-survey-html-form-next")

    def answer_all(self, policy):
        page = self.page
        while True:
            page.wait_for_selector(".iri-option:enabled, #iri-download")
            if page.locator("#iri-download").count():
                return
            query, options = page.evaluate(
                "() => [document.querySelector('.iri-query img').getAttribute('src'),"
                " [...document.querySelectorAll('.iri-option img')].map(i => i.getAttribute('src'))]"
            )
            choice = policy(query, options)
            page.locator(".iri-option").nth(choice).click()
            self.screens.append((query, options, choice))
            page.wait_for_selector(".iri-option", state="detached")

    def download(self, folder: Path) -> Path:
        with self.page.expect_download() as info:
            self.page.click("#iri-download")
        path = folder / info.value.suggested_filename
        info.value.save_as(path)
        return path

    def close(self):
        self.context.close()
        assert not self.errors, self.errors


def catch_aware(rng, fail_catch=False):
    """Catch screens (the query is one of the options): the identical option,
    or another one with fail_catch; other screens: a seeded random option."""

    def policy(query, options):
        if query in options:
            same = options.index(query)
            return (same + 1) % len(options) if fail_catch else same
        return int(rng.integers(len(options)))

    return policy


def expected_scores(answers: pd.DataFrame, trials: pd.DataFrame) -> pd.Series:
    """prop_correct per condition as score() defines it: the mean over
    participant x target cells of each cell's mean correctness."""
    a = answers.merge(trials[["trial_id", "kind", "alternative", "target", "correct"]], on="trial_id")
    a = a.loc[a["kind"] != "catch"]
    a["ok"] = a["clicked"] == a["correct"]
    cells = a.groupby(["set_id", "kind", "alternative", "participant", "target"])["ok"].mean()
    return cells.groupby(["set_id", "kind", "alternative"]).mean()


@pytest.fixture(scope="module")
def taken(fake, browser, tmp_path_factory):
    """Two participants: A types the code, gets the hashed list and passes
    the catch trials; B comes with ?participant=B&list=0 and fails them."""
    downloads = tmp_path_factory.mktemp("downloads")
    index = (fake["folder"] / "index.html").as_uri()
    out = {}
    for code, query, fail in (("A", "", False), ("B", "?participant=B&list=0", True)):
        p = Participant(browser, index + query)
        p.consent_and_instructions()
        if not query:
            p.enter_code(code)
        p.answer_all(catch_aware(np.random.default_rng(len(code) + ord(code)), fail_catch=fail))
        end_text = p.page.inner_text("body")
        path = p.download(downloads)
        p.close()
        out[code] = {"screens": p.screens, "file": path, "end_text": end_text}
    return out


def test_survey_records_what_was_shown_and_clicked(fake, taken):
    trials, data = fake["trials"], fake["data"]
    by_id = {t["trial_id"]: t for t in data["trials"]}
    for code, lst in (("A", assign_list("A", len(data["lists"]))), ("B", 0)):
        got = taken[code]
        assert re.fullmatch(rf"iri-survey_{code}_\d{{8}}T\d{{6}}\.csv", got["file"].name)
        assert f"Your participant code: {code}" in got["end_text"]
        responses = load_responses(got["file"], trials)
        members = [data["trials"][i]["trial_id"] for i in data["lists"][lst]]
        assert sorted(responses["trial_id"]) == sorted(members)  # exactly the participant's list
        assert responses["trial_id"].tolist() != members  # in a shuffled order
        assert (responses["participant"] == code).all() and (responses["observer"] == "real").all()
        assert (responses["rt_ms"] > 0).all()
        screens = got["screens"]
        assert len(screens) == len(responses)
        for (query, options, clicked), r in zip(screens, responses.itertuples()):
            assert by_id[r.trial_id]["query"] == query and by_id[r.trial_id]["options"] == options
            assert r.response == clicked
        n_catch = (trials.set_index("trial_id").loc[members, "kind"] == "catch").sum()
        assert n_catch == 2 == sum(q in o for q, o, _ in screens)  # catch screens recognisable
        raw = pd.read_csv(got["file"])
        assert (raw.loc[raw["trial_id"].notna(), "list"] == lst).all()
        assert (raw["survey_id"] == data["survey_id"]).all()


def clicks_table(taken, data) -> pd.DataFrame:
    """What each participant clicked, per trial (from the screens, through
    the embedded data: independent of the downloaded file)."""
    screen_to_trial = {}
    for t in data["trials"]:
        screen_to_trial.setdefault((t["query"], tuple(t["options"])), []).append(t["trial_id"])
    set_of = {t["trial_id"]: t["set_id"] for t in data["trials"]}
    rows = []
    for code, got in taken.items():
        # identical screens (a catch trial of each set, say) could belong to several trials; the
        # file's order tells which one it was, and it must be one that shows exactly these images
        raw = pd.read_csv(got["file"])
        order = raw.loc[raw["trial_id"].notna(), "trial_id"].tolist()
        for (query, options, clicked), trial_id in zip(got["screens"], order, strict=True):
            assert trial_id in screen_to_trial[(query, tuple(options))]
            rows.append({"participant": code, "trial_id": trial_id, "set_id": set_of[trial_id], "clicked": clicked})
    return pd.DataFrame(rows)


def test_scores_of_the_downloaded_data_match_the_clicks(fake, taken):
    trials, data = fake["trials"], fake["data"]
    clicks = clicks_table(taken, data)
    responses = pd.concat([load_responses(taken[c]["file"], trials) for c in ("A", "B")], ignore_index=True)
    scores = score(responses, trials, n_boot=50).set_index(["set_id", "kind", "alternative"])
    expected = expected_scores(clicks, trials)
    assert set(scores.index) == set(expected.index) and (scores["observer"] == "real").all()
    np.testing.assert_allclose(scores.loc[expected.index, "prop_correct"], expected.to_numpy())
    assert 0 < expected.mean() < 1  # random answers: neither all right nor all wrong
    n = clicks.merge(trials[["trial_id", "kind", "alternative"]]).query("kind != 'catch'")
    assert (
        scores.loc[expected.index, "n_trials"].tolist()
        == n.groupby(["set_id", "kind", "alternative"]).size().loc[expected.index].tolist()
    )


def test_score_alignment_imports_real_responses(fake, taken, tmp_path):
    work, trials = fake["work"], fake["trials"]
    alignment = work / "results/judgments/alignment.csv"
    exclusions = work / "results/judgments/exclusions.json"

    def run(files, check=True):
        real = tmp_path / "real.yaml"
        real.write_text(yaml.safe_dump({"judgments": {"observers": {"real": {"responses": [str(f) for f in files]}}}}))
        return run_snakemake(
            str(alignment.relative_to(work)),
            "--allowed-rules",
            "score_alignment",
            "--cores",
            "1",
            "-d",
            str(work),
            *fake["config"],
            str(real),
            check=check,
        )

    # a corrupt file (an answer out of range) stops the rule, naming file, row and column; nothing is written
    bad = tmp_path / "bad.csv"
    rows = list(csv.reader(io.StringIO(taken["A"]["file"].read_text(), newline="")))
    col, tid = rows[0].index("response"), rows[0].index("trial_id")
    first = next(i for i, r in enumerate(rows) if i and r[tid])
    rows[first][col] = "7"
    with bad.open("w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    proc = run([bad], check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{bad}: row {first} (line {first + 1}), column 'response': 7 is out of range" in text, text[-3000:]
    assert not alignment.exists() and not exclusions.exists()

    run([taken["A"]["file"], taken["B"]["file"]])
    table = pd.read_csv(alignment, keep_default_na=False)
    assert set(table["observer"]) == {"real", "simulated:gmsd"}
    real = table.loc[table["observer"] == "real"]
    # B failed the catch trials and is excluded: the real rows are A's answers alone
    clicks = clicks_table(taken, fake["data"])
    expected = expected_scores(clicks.loc[clicks["participant"] == "A"], trials)
    real = real.assign(set_id=real[["dataset", "model", "layer", "loss", "seed_type"]].agg("/".join, axis=1))
    real = real.set_index(["set_id", "kind", "alternative"])
    assert set(real.index) == set(expected.index) and (real["n_participants"] == 1).all()
    np.testing.assert_allclose(real.loc[expected.index, "prop_correct"], expected.to_numpy(), atol=5e-5)
    report = json.loads(exclusions.read_text())
    assert report["by_observer"]["real"]["n_participants"] == 2
    assert report["by_observer"]["real"]["excluded"] == ["B"]
    assert report["by_observer"]["simulated:gmsd"]["n_participants"] == 5
    assert (
        report["n_participants"] == 7
        and report["n_excluded"] == 1 + report["by_observer"]["simulated:gmsd"]["n_excluded"]
    )
    assert report["real_files"] == [str(taken["A"]["file"]), str(taken["B"]["file"])]


def test_refusing_consent_and_bad_links(fake, browser):
    index = (fake["folder"] / "index.html").as_uri()
    p = Participant(browser, index)
    p.page.get_by_role("button", name="I do not agree").click()
    p.page.wait_for_selector("text=You chose not to take part")
    assert p.page.locator("#iri-download").count() == 0
    p.close()
    p = Participant(browser, index + "?list=99")
    p.page.wait_for_selector("text=This link is not valid")
    p.close()


def test_participant_text_is_never_markup(fake, browser):
    """Markup in the URL or the code field is rejected, not rendered."""
    nasty = "<img src=x onerror=\"document.title='owned'\">"
    index = (fake["folder"] / "index.html").as_uri()
    p = Participant(browser, index + "?participant=" + nasty.replace(" ", "%20").replace('"', "%22"))
    p.consent_and_instructions()
    p.page.wait_for_selector("#iri-participant")  # the URL's value was not accepted
    p.page.fill("#iri-participant", "<b>bold</b>")
    p.page.click("#jspsych-survey-html-form-next")
    assert p.page.locator("#iri-participant:invalid").count() == 1  # the form refuses it
    assert p.page.locator("b:has-text('bold')").count() == 0 and p.page.title() != "owned"
    p.close()


class _Collector(http.server.SimpleHTTPRequestHandler):
    """Serves the survey folder and records POSTs to /submit."""

    received: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/submit" and self.headers["Content-Type"] == "text/csv"
        if ok:
            self.received.append(body)
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_served_over_http_and_posted(fake, browser, tmp_path):
    """Hosted on a web server with survey.post_url set: the answers arrive
    by POST, in a file the importer takes."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    port = server.server_address[1]
    settings = {
        **SURVEY,
        "trials_per_participant": 4,
        "post_url": f"http://127.0.0.1:{port}/submit",
        "image_px": 120,
        "title": "T",
        "consent": ["C"],
    }
    images = fake["images"]
    folder = tmp_path / "hosted"
    export_survey(fake["trials"], images.__getitem__, folder, settings, package_dir=PACKAGE)
    assert f"connect-src http://127.0.0.1:{port};" in (folder / "index.html").read_text()
    handler = type(
        "Handler",
        (_Collector,),
        {"received": [], "__init__": lambda self, *a, **k: _Collector.__init__(self, *a, directory=str(folder), **k)},
    )
    server.RequestHandlerClass = handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        p = Participant(browser, f"http://127.0.0.1:{port}/index.html?participant=C")
        p.consent_and_instructions()
        p.answer_all(lambda q, o: o.index(q) if q in o else 0)
        p.page.wait_for_selector("#iri-post-status[data-state=sent]")
        p.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(handler.received) == 1
    posted = tmp_path / "posted.csv"
    posted.write_bytes(handler.received[0])
    responses = load_responses(posted, fake["trials"])
    data = read_embedded_data(folder / "index.html")
    members = {data["trials"][i]["trial_id"] for i in data["lists"][assign_list("C", len(data["lists"]))]}
    assert set(responses["trial_id"]) == members and (responses["participant"] == "C").all()
    assert {t["px"] for t in data["trials"]} == {120}
    assert (responses["response"] == [s[2] for s in p.screens]).all()
