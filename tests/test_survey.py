"""The browser survey end to end on a small fake results tree (two IRI sets
of one model): the export (rule export_survey and iriflow.survey), a
headless Chromium taking the survey as participants do, and the import of
what it downloads (or POSTs) through the key file into scoring
(load_responses, score, and the rule score_alignment with
judgments.observers.real.responses and .key). The design of the default
config (its trials tables without models) is checked for balance, for
exposure strategies and for what its hosted folder holds.

Needs npm (the export fetches the jsPsych builds pinned in survey/) and, for
the browser tests, Debian's chromium: the session fixture installs it with
apt-get when missing and running as root; where that is impossible the tests
fail under CI (the environment variable CI is set) and are skipped otherwise.
The design tests need neither."""

from __future__ import annotations

import csv
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import ROOT, SCHEMA, run_snakemake
from iriflow.config import model_ids, validate_config
from iriflow.iriset import IRISet, procedure_set_id
from iriflow.judgments import build_trials, feature_trials, simulate_population
from iriflow.responses import load_responses
from iriflow.scoring import score
from iriflow.survey import (
    ASSETS,
    KEY_COLUMNS,
    REPEATS,
    SurveyError,
    check_post_url,
    collect_stimuli,
    embed_json,
    export_survey,
    fnv1a32,
    make_lists,
    prepare_survey,
    read_embedded_data,
    read_key,
    read_list_script,
    render_page,
    shown_images,
    write_site,
)
from iriflow.viz import to_uint8

MODEL = "mnist5k/resnet18-ce-none-s0"
LOSSES = ("regfree", "adversarial")
SETS = [f"{MODEL}/penultimate/{loss}/other-image" for loss in LOSSES]
PACKAGE = ROOT / "survey"  # package.json and package-lock.json of the survey page
N = 6
LABELS = np.array([0, 1, 2, 0, 1, 2])
CONVERGED = {SETS[0]: np.ones(N, bool), SETS[1]: np.array([1, 1, 1, 1, 1, 0], bool)}
SURVEY = {"trials_per_participant": 8, "catch_per_participant": 1, "seed": 0}
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
PAGE_KEYS = {"format", "survey_id", "title", "consent", "post_url", "shuffle_key", "participant_pattern"}
SCREEN_KEYS = {"id", "query", "options", "px", "question"}


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
    folder = work / "results/survey/site"
    links = pd.read_csv(work / "results/survey/links.csv", dtype={"list_token": str})
    return {
        "work": work,
        "images": images,
        "trials": trials,
        "config": config,
        "proc": proc,
        "folder": folder,
        "data": read_embedded_data(folder / "index.html"),
        "key": read_key(work / "results/survey/key.csv"),
        "links": links,
        "lists": {t: read_list_script(folder / "lists" / f"{t}.js") for t in links["list_token"]},
    }


def decode(path: Path) -> np.ndarray:
    arr = np.asarray(Image.open(path))
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def check_image_rule(payloads) -> Counter:
    """Within each list: an image is in at most REPEATS screens, screens that
    share an option image show the same options, and a query image is never
    an option of another screen. Returns how many screens of a list show
    each image, counted over all lists."""
    appearances = Counter()
    for payload in payloads.values():
        as_option: dict[str, set] = {}
        queries, counts = set(), Counter()
        for s in payload["trials"]:
            counts.update({s["query"], *s["options"]})
            if s["query"] not in s["options"]:  # not a catch screen
                queries.add(s["query"])
            for o in s["options"]:
                as_option.setdefault(o, set()).add(frozenset(s["options"]))
        assert max(counts.values()) <= REPEATS
        assert all(len(keys) == 1 for keys in as_option.values())
        assert not queries & set(as_option)
        appearances.update(counts.values())
    return appearances


# --- the exported folder -------------------------------------------------------


def test_export_folder_content(fake):
    folder, data, key = fake["folder"], fake["data"], fake["key"]
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    files.discard(".snakemake_timestamp")  # Snakemake's marker in directory outputs
    stimuli = {f for f in files if re.fullmatch(r"stimuli/[0-9a-f]{20}\.png", f)}
    lists = {f"lists/{t}.js" for t in fake["links"]["list_token"]}
    app = {"index.html", "survey.js", "survey.css", "NOTICE.txt", "stimuli/index.html", "lists/index.html", *ASSETS}
    assert files == app | stimuli | lists
    assert all(re.fullmatch(r"lists/[0-9a-f]{20}\.js", f) for f in lists)
    shown = {i for p in fake["lists"].values() for t in p["trials"] for i in [t["query"], *t["options"]]}
    assert shown == stimuli
    # each list names its images its own way: no file is shown by two lists
    per_list = [{i for t in p["trials"] for i in [t["query"], *t["options"]]} for p in fake["lists"].values()]
    assert sum(map(len, per_list)) == len(stimuli)
    # stored uncompressed: images of one shape, files of one size
    assert len({(folder / f).stat().st_size for f in stimuli}) == 1
    # the jsPsych build pinned by survey/package-lock.json
    lock = json.loads((ROOT / "survey/package-lock.json").read_text())
    assert lock["packages"]["node_modules/jspsych"]["version"] == "8.3.0"
    assert 'We="8.3.0"' in (folder / "jspsych/jspsych.js").read_text()
    assert "jspsych 8.3.0" in (folder / "NOTICE.txt").read_text()
    assert (folder / "survey.js").read_bytes() == (ROOT / "survey/src/survey.js").read_bytes()
    page = (folder / "index.html").read_text()
    assert "connect-src 'none'" in page  # no post_url: the page may not send anything anywhere
    assert set(data) == PAGE_KEYS and data["format"] == 2 and data["post_url"] == ""
    assert not any(t in page for t in fake["links"]["list_token"])  # the page links to no list
    n_lists = len(fake["links"])
    assert set(key.columns) == set(KEY_COLUMNS) and (key["survey_id"] == data["survey_id"]).all()
    log = (fake["work"] / "results/logs/survey/export_survey.log").read_text()
    assert f"survey {data['survey_id']}: 35 trials (4 catch) from 2 IRI sets" in log
    assert f"{n_lists} lists of" in log
    links = fake["links"]
    assert links["link"].tolist() == [f"index.html?list={t}" for t in links["list_token"]]
    assert links["n_trials"].tolist() == [len(fake["lists"][t]["trials"]) for t in links["list_token"]]


def test_lists_show_the_trials_of_the_key(fake):
    """Every screen of every list file is a trial of the key, showing the
    trial's images in the key's order; the key says what is correct."""
    trials, key, images, folder = fake["trials"], fake["key"], fake["images"], fake["folder"]
    t = trials.set_index("trial_id")
    k = key.set_index("trial")
    for token, payload in fake["lists"].items():
        assert payload["list"] == token and payload["survey_id"] == fake["data"]["survey_id"]
        assert sorted(k.index[k["list_token"] == token]) == [s["id"] for s in payload["trials"]]
        for s in payload["trials"]:
            assert set(s) == SCREEN_KEYS and s["px"] == 168 and s["question"] == "similar"
            row = k.loc[s["id"]]
            trial = t.loc[row.trial_id]
            order = [int(o) for o in row.shown_order.split("|")]
            assert sorted(order) == list(range(trial.n_options))
            assert row.correct_shown == order.index(trial.correct)
            assert (row.set_id, row.kind, row.alternative, row.target) == (
                trial.set_id,
                trial.kind,
                trial.alternative,
                trial.target,
            )
            refs = [trial.query] + [trial.options.split("|")[o] for o in order]
            for ref, src in zip(refs, [s["query"], *s["options"]]):
                kind, _, i = ref.partition(":")
                expected = to_uint8(images[row.set_id][kind][int(i)][None])[0]
                np.testing.assert_array_equal(decode(folder / src), expected, err_msg=f"{row.trial_id} {ref}")
    main = trials.loc[trials["kind"] != "catch", "trial_id"]
    assert sorted(key.loc[key["kind"] != "catch", "trial_id"]) == sorted(main)  # each judgment once


def test_lists_of_the_export(fake):
    trials, key = fake["trials"], fake["key"]
    sizes = key.groupby("list").size()
    # six targets hold few screens under the image rule: short lists, some with what was left over
    assert (sizes <= SURVEY["trials_per_participant"]).all() and sizes.min() >= 2
    assert (key.loc[key["kind"] == "catch"].groupby("list").size() == 1).all()
    assert key["list"].nunique() == len(fake["links"]) >= -(-(trials["kind"] != "catch").sum() // 7)
    check_image_rule(fake["lists"])


def _shown(trials: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """Image names as the export would give them: a target is one image in
    every set, a seed one per seed index, the rest one per set."""

    def name(set_id, ref):
        return ref if not ref.startswith("iri:") else f"{set_id}/{ref}"

    return [
        (name(s, q), [name(s, o) for o in opts.split("|")])
        for s, q, opts in zip(trials["set_id"], trials["query"], trials["options"])
    ]


def test_participant_lists_are_balanced_and_cover_every_trial():
    labels = np.arange(40) % 8
    trials = pd.concat(
        [build_trials(40, labels, np.arange(40) % 7 != 0, n_catch=5, seed=s, set_id=f"S{s}") for s in range(3)],
        ignore_index=True,
    )
    shown = _shown(trials)
    lists = make_lists(trials, shown, 25, 1, seed=1)
    main = np.flatnonzero(trials["kind"] != "catch")
    assert len(lists) >= -(-len(main) // 24) and all(len(m) <= 25 for m in lists)
    members = np.concatenate(lists)
    judged = members[trials["kind"].to_numpy()[members] != "catch"]
    assert sorted(judged) == sorted(main)  # every judgment trial in exactly one list
    sizes = np.array(list(map(len, lists)))
    assert (sizes >= sizes.max() - 4).mean() > 0.8  # most lists nearly full; the rest hold what was left over
    catch = [sorted(i for i in m if trials["kind"].iloc[i] == "catch") for m in lists]
    assert all(len(c) == len(set(c)) == 1 for c in catch)
    used = np.bincount(np.concatenate(catch), minlength=len(trials))[trials["kind"] == "catch"]
    assert used.max() - used.min() <= 2  # catch trials used in turn (skipping those that clash)
    payloads = {i: {"trials": [{"query": shown[r][0], "options": shown[r][1]} for r in m]} for i, m in enumerate(lists)}
    check_image_rule(payloads)
    assert make_lists(trials, shown, 25, 1, seed=1) == lists and make_lists(trials, shown, 25, 1, seed=2) != lists
    with pytest.raises(SurveyError, match="must exceed"):
        make_lists(trials, shown, 1, 1, seed=0)


def test_participant_lists_do_not_depend_on_the_hash_seed():
    """The dealing is a function of the trials and survey.seed alone: Python
    orders a set of strings by a per-process hash seed, so no set's order
    may reach it (this construction failed to deal in about 1 of 10
    processes when one did)."""
    code = (
        "import json; import numpy as np, pandas as pd\n"
        "from test_survey import _shown, build_trials, make_lists\n"
        "labels = np.arange(40) % 8\n"
        "trials = pd.concat([build_trials(40, labels, np.arange(40) % 7 != 0, n_catch=5, seed=s, set_id=f'S{s}')"
        " for s in range(3)], ignore_index=True)\n"
        "print(json.dumps(make_lists(trials, _shown(trials), 25, 1, seed=1)))\n"
    )
    runs = {}
    for hash_seed in ("9", "19", "0"):  # 9 and 19 failed to deal before
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT / "tests")}
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[hash_seed] = json.loads(out.stdout)
    assert runs["9"] == runs["19"] == runs["0"] and len(runs["0"]) >= 13


def test_order_seed_hash():
    # FNV-1a 32-bit reference values (the same function as survey.js, which seeds trial orders with it)
    assert fnv1a32("") == 0x811C9DC5 and fnv1a32("a") == 0xE40C292C and fnv1a32("foobar") == 0xBF9CF968


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
            assert "<" not in line, line
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
    clicked) with the image file names as the page shows them; ``requests``
    lists the URLs the page asked for."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(accept_downloads=True, viewport={"width": 900, "height": 700})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("request", lambda r: self.requests.append(r.url))
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

    def answer_all(self, policy, screenshot: Path | None = None):
        page = self.page
        while True:
            page.wait_for_selector(".iri-option:enabled, #iri-download")
            if page.locator("#iri-download").count():
                return
            query, options = page.evaluate(
                "() => [document.querySelector('.iri-query img').getAttribute('src'),"
                " [...document.querySelectorAll('.iri-option img')].map(i => i.getAttribute('src'))]"
            )
            if screenshot is not None and not self.screens:
                page.screenshot(path=str(screenshot))
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
    participant x target cells of each cell's mean correctness; ``clicked``
    is an option index of the trials table."""
    a = answers.merge(trials[["trial_id", "kind", "alternative", "target", "correct"]], on="trial_id")
    a = a.loc[a["kind"] != "catch"]
    a["ok"] = a["clicked"] == a["correct"]
    cells = a.groupby(["set_id", "kind", "alternative", "participant", "target"])["ok"].mean()
    return cells.groupby(["set_id", "kind", "alternative"]).mean()


@pytest.fixture(scope="module")
def taken(fake, browser, tmp_path_factory):
    """Two participants with the first two links: A types the code and
    passes the catch trials; B comes with ?participant=B and fails them. A's
    first judgment screen is saved as trial.png."""
    downloads = tmp_path_factory.mktemp("downloads")
    index = (fake["folder"] / "index.html").as_uri()
    tokens = fake["links"]["list_token"].tolist()
    out = {}
    for code, token, query, fail in (("A", tokens[0], "", False), ("B", tokens[1], "&participant=B", True)):
        p = Participant(browser, f"{index}?list={token}{query}")
        p.consent_and_instructions()
        if not query:
            p.enter_code(code)
        shot = downloads / "trial.png" if code == "A" else None
        p.answer_all(catch_aware(np.random.default_rng(len(code) + ord(code)), fail_catch=fail), shot)
        end_text = p.page.inner_text("body")
        path = p.download(downloads)
        p.close()
        out[code] = {"screens": p.screens, "file": path, "end_text": end_text, "list": token, "requests": p.requests}
    out["screenshot"] = downloads / "trial.png"
    return out


def test_survey_records_what_was_shown_and_clicked(fake, taken):
    trials, key = fake["trials"], fake["key"]
    for code in ("A", "B"):
        got = taken[code]
        token = got["list"]
        screens = {s["id"]: s for s in fake["lists"][token]["trials"]}
        assert re.fullmatch(rf"iri-survey_{code}_\d{{8}}T\d{{6}}\.csv", got["file"].name)
        assert f"Your participant code: {code}" in got["end_text"]
        raw = pd.read_csv(got["file"], dtype=str)
        judged = raw.loc[raw["trial_id"].notna()]
        assert sorted(judged["trial_id"]) == sorted(screens)  # exactly the participant's list
        assert "set_id" not in raw.columns  # the page does not know the conditions
        assert (judged["list"] == token).all() and (raw["survey_id"] == fake["data"]["survey_id"]).all()
        assert len(got["screens"]) == len(judged)
        for (query, options, clicked), r in zip(got["screens"], judged.itertuples()):
            assert screens[r.trial_id]["query"] == query and screens[r.trial_id]["options"] == options
            assert int(r.response) == clicked
        n_catch = (key.set_index("trial").loc[list(screens), "kind"] == "catch").sum()
        assert n_catch == 1 == sum(q in o for q, o, _ in got["screens"])  # catch screens recognisable
        # the page asked for its own list file and no other
        lists = [u for u in got["requests"] if "/lists/" in u]
        assert [u.rsplit("/", 1)[1] for u in lists] == [f"{token}.js"]
        # imported through the key: the trials table's ids, sets and option indices
        responses = load_responses(got["file"], trials, key)
        k = key.set_index("trial").loc[judged["trial_id"]]
        assert responses["trial_id"].tolist() == k["trial_id"].tolist()
        assert responses["set_id"].tolist() == k["set_id"].tolist()
        order = [[int(o) for o in s.split("|")] for s in k["shown_order"]]
        assert responses["response"].tolist() == [o[int(c)] for o, c in zip(order, judged["response"])]
        assert (responses["participant"] == code).all() and (responses["observer"] == "real").all()
        assert (responses["rt_ms"] > 0).all()
        with pytest.raises(ValueError, match="needs the survey's key"):
            load_responses(got["file"], trials)  # without the key the ids mean nothing


def test_screenshot_of_a_trial_screen(taken):
    """The first judgment screen as the participant saw it (kept in the
    test's tmp folder): the question, the query framed on top and the
    options as buttons below, at 14x the 12-px images' size."""
    shot = taken["screenshot"]
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (700, 900)
    dark = img < 250
    assert 0.01 < dark.mean() < 0.6  # something is drawn, not a blank or black page
    # the query and option images are 168 px wide: rows of dark pixels that wide exist
    rows = dark.sum(1)
    assert (rows >= 168).sum() > 168


def clicks_table(taken, key) -> pd.DataFrame:
    """What each participant clicked, per trial and in the trials table's
    option order (from the screens and the key: independent of the file)."""
    k = key.set_index("trial")
    rows = []
    for code in ("A", "B"):
        got = taken[code]
        raw = pd.read_csv(got["file"])
        order = raw.loc[raw["trial_id"].notna(), "trial_id"].tolist()
        for (_, _, clicked), screen in zip(got["screens"], order, strict=True):
            row = k.loc[screen]
            shown = [int(o) for o in row.shown_order.split("|")]
            rows.append(
                {"participant": code, "trial_id": row.trial_id, "set_id": row.set_id, "clicked": shown[clicked]}
            )
    return pd.DataFrame(rows)


def test_scores_of_the_downloaded_data_match_the_clicks(fake, taken):
    trials, key = fake["trials"], fake["key"]
    clicks = clicks_table(taken, key)
    responses = pd.concat([load_responses(taken[c]["file"], trials, key) for c in ("A", "B")], ignore_index=True)
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
    """The downloaded lists, imported through the key and scored next to the
    simulated observers (rule score_alignment)."""
    work, trials = fake["work"], fake["trials"]
    alignment = work / "results/judgments/alignment.csv"
    exclusions = work / "results/judgments/exclusions.json"
    key_file = work / "results/survey/key.csv"

    def run(files, check=True):
        real = tmp_path / "real.yaml"
        real.write_text(
            yaml.safe_dump(
                {"judgments": {"observers": {"real": {"responses": [str(f) for f in files], "key": str(key_file)}}}}
            )
        )
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

    # a corrupt file (an answer out of range) stops the run, naming file, row and column; nothing is written
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
    clicks = clicks_table(taken, fake["key"])
    expected = expected_scores(clicks.loc[clicks["participant"] == "A"], trials)
    real = real.assign(set_id=real[["dataset", "model", "layer", "loss", "seed_type"]].agg("/".join, axis=1))
    real = real.set_index(["set_id", "kind", "alternative"])
    assert set(real.index) == set(expected.index) and (real["n_participants"] == 1).all()
    np.testing.assert_allclose(real.loc[expected.index, "prop_correct"], expected.to_numpy(), atol=5e-5)
    sim = table.loc[table["observer"] == "simulated:gmsd"].set_index(["kind", "alternative"])
    print("\nA's list, scored beside the simulated observers (prop_correct):")
    print(
        table.pivot_table(index=["loss", "kind", "alternative"], columns="observer", values="prop_correct").to_string()
    )
    assert len(sim) > 0
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
    token = fake["links"]["list_token"].iloc[0]
    p = Participant(browser, f"{index}?list={token}")
    p.page.get_by_role("button", name="I do not agree").click()
    p.page.wait_for_selector("text=You chose not to take part")
    assert p.page.locator("#iri-download").count() == 0
    p.close()
    # no list, a list number (the old links), a token of no list: refused
    for query in ("", "?list=3", "?list=" + "0" * 20):
        p = Participant(browser, index + query)
        p.page.wait_for_selector("text=This link is not valid")
        p.errors = [e for e in p.errors if "ERR_FILE_NOT_FOUND" not in e]  # the missing list file
        p.close()


def test_participant_text_is_never_markup(fake, browser):
    """Markup in the URL or the code field is rejected, not rendered."""
    nasty = "<img src=x onerror=\"document.title='owned'\">"
    index = (fake["folder"] / "index.html").as_uri()
    token = fake["links"]["list_token"].iloc[0]
    p = Participant(browser, f"{index}?list={token}&participant=" + nasty.replace(" ", "%20").replace('"', "%22"))
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
    by POST, in a file the importer takes with the key."""
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
    export_survey(fake["trials"], images.__getitem__, tmp_path / "out", settings, package_dir=PACKAGE)
    folder = tmp_path / "out/site"
    key = read_key(tmp_path / "out/key.csv")
    token = key["list_token"].iloc[0]
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
        # a folder listing shows a blank page, not the list files
        p = Participant(browser, f"http://127.0.0.1:{port}/lists/")
        assert token not in p.page.content()
        p.close()
        p = Participant(browser, f"http://127.0.0.1:{port}/index.html?list={token}&participant=C")
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
    responses = load_responses(posted, fake["trials"], key)
    assert set(responses["trial_id"]) == set(key.loc[key["list_token"] == token, "trial_id"])
    assert (responses["participant"] == "C").all()
    payload = read_list_script(folder / "lists" / f"{token}.js")
    assert {t["px"] for t in payload["trials"]} == {120}
    k = key.set_index("trial")
    raw = pd.read_csv(posted)
    shown = [[int(o) for o in k.loc[t, "shown_order"].split("|")] for t in raw.loc[raw["trial_id"].notna(), "trial_id"]]
    assert (responses["response"] == [o[s[2]] for o, s in zip(shown, p.screens)]).all()


# --- the default design: balance and exposure strategies ----------------------
#
# The default export needs trained models; its design does not. default_design
# builds the trials tables the default config asks for (every model x layer x
# IRI loss x seed type, and a feature-visualisation set per model) with every
# IRI converged, and synthetic images that are shared exactly where the real
# ones are: the targets by all sets of a dataset, the seeds of a seed type by
# all models, each IRI and each feature set's images by one set.


def default_design():
    """(trials, load_set, survey settings) of the default config's design."""
    cfg = validate_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()), SCHEMA)
    n, j, iris, eng = cfg["targets"]["n"], cfg["judgments"], cfg["iris"], cfg["engstrom"]
    labels = np.arange(n) % 10  # a class-balanced draw of the ten digits
    rng = np.random.default_rng(0)
    size = 28
    targets = fake_images(rng, n, size)
    seeds = {s: fake_images(rng, n, size) for s in iris["seed_types"]}
    images, tables = {}, []
    for model in model_ids(cfg):
        for layer in iris["layers"]:
            for loss in iris["losses"]:
                for seed_type in iris["seed_types"]:
                    set_id = f"{model}/{layer}/{loss}/{seed_type}"
                    images[set_id] = {"iri": fake_images(rng, n, size), "target": targets, "seed": seeds[seed_type]}
                    tables.append(
                        build_trials(
                            n,
                            labels,
                            np.ones(n, bool),
                            alternatives=tuple(j["alternatives"]),
                            matching_k=j["matching_k"],
                            n_catch=j["n_catch"],
                            seed=j["seed"],
                            set_id=set_id,
                        )
                    )
        if eng["enabled"]:
            k, m = eng["features"]["k"], eng["features"]["n_examples"]
            set_id = procedure_set_id(model, eng["layer"], "features", eng["features"]["seed_type"])
            features = IRISet(
                set_id,
                iris=fake_images(rng, k, size),
                seeds=fake_images(rng, k, size),
                targets=fake_images(rng, k, size),
                target_index=np.arange(k),
                target_label=np.arange(k) % 10,
                rel_dist=np.full(k, np.nan),
                loss=np.zeros(k),
                converged=np.ones(k, bool),
                extra={
                    "top": fake_images(rng, k * m, size),
                    "bottom": fake_images(rng, k * m, size),
                    "top_index": np.arange(k * m).reshape(k, m),
                },
            )
            images[str(set_id)] = features.images()
            tables.append(feature_trials(features, seed=j["seed"]))
    trials = pd.concat(tables, ignore_index=True)
    settings = {**cfg["survey"], "title": "t", "consent": []}
    return trials, images.__getitem__, settings


@pytest.fixture(scope="module")
def design():
    trials, load_set, settings = default_design()
    page, payloads, key, files = prepare_survey(trials, load_set, settings)
    return {"trials": trials, "settings": settings, "page": page, "payloads": payloads, "key": key, "files": files}


def _pick(values, rng) -> int:
    values = np.asarray(values, dtype=np.float64)
    return int(rng.choice(np.flatnonzero(values == values.max())))


# Strategies that use anything but the images' content: how often and when an
# option was shown, where it is, its file's name and size. Each scores the
# options of a screen; the highest wins (ties: a random one of them).
STRATEGIES = {
    "most-often-seen (whole list)": lambda o, c: c["total"][o],
    "least-often-seen (whole list)": lambda o, c: -c["total"][o],
    "seen before": lambda o, c: c["before"][o],
    "never seen before": lambda o, c: -c["before"][o],
    "shared with another screen": lambda o, c: c["total"][o] > 1,
    "seen with this query before": lambda o, c: c["pairs"][(c["query"], o)],
    "first position": lambda o, c: -c["position"][o],
    "last position": lambda o, c: c["position"][o],
    "first file name": lambda o, c: -c["rank"][o],
    "last file name": lambda o, c: c["rank"][o],
    "smallest file": lambda o, c: -c["size"][o],
    "largest file": lambda o, c: c["size"][o],
}


def exposure_scores(payloads, key, files, orders: int = 3, seed: int = 0) -> pd.DataFrame:
    """Proportion correct of each strategy per trial kind (kind/alternative),
    over every list, each taken in ``orders`` shuffled orders (catch screens
    excluded: their answer is in plain sight by design)."""
    rng = np.random.default_rng(seed)
    truth = key.drop_duplicates("trial").set_index("trial")
    sizes = {f"stimuli/{name}": len(blob) for name, blob in files.items()}
    tally: dict[tuple[str, str], list] = {}
    for payload in payloads.values():
        screens = payload["trials"]
        total = Counter(i for s in screens for i in {s["query"], *s["options"]})
        for _ in range(orders):
            before, pairs = Counter(), Counter()
            for s in (screens[i] for i in rng.permutation(len(screens))):
                row = truth.loc[s["id"]]
                opts = s["options"]
                if row.kind != "catch":
                    ctx = {
                        "total": total,
                        "before": before,
                        "pairs": pairs,
                        "query": s["query"],
                        "position": {o: p for p, o in enumerate(opts)},
                        "rank": {o: r for r, o in enumerate(sorted(opts))},
                        "size": sizes,
                    }
                    condition = f"{row.kind}:{row.alternative}" if row.alternative else row.kind
                    for name, value in STRATEGIES.items():
                        pick = _pick([value(o, ctx) for o in opts], rng)
                        tally.setdefault((name, condition), [0, 0, len(opts)])
                        tally[(name, condition)][0] += pick == row.correct_shown
                        tally[(name, condition)][1] += 1
                before.update({s["query"], *opts})
                pairs.update((s["query"], o) for o in opts)
    out = pd.DataFrame(
        [(n, c, ok / total, total, 1 / k) for (n, c), (ok, total, k) in tally.items()],
        columns=["strategy", "kind", "prop_correct", "n_screens", "chance"],
    )
    return out


def test_default_design_lists(design):
    """The default config's design: every judgment in one list, lists of
    (nearly) one size and mix of kinds, each image in at most REPEATS
    screens of a list, the correct position balanced. Prints the numbers the
    README gives."""
    trials, key, payloads = design["trials"], design["key"], design["payloads"]
    settings = design["settings"]
    main = trials.loc[trials["kind"] != "catch"]
    assert sorted(key.loc[key["kind"] != "catch", "trial_id"]) == sorted(main["trial_id"])
    sizes = key.groupby("list").size()
    assert sizes.max() <= settings["trials_per_participant"] and sizes.max() - sizes.min() <= 1
    catch = key.loc[key["kind"] == "catch"].groupby("list").size().reindex(sizes.index, fill_value=0)
    assert (catch == settings["catch_per_participant"]).all()
    kinds = (
        key.assign(kind=key["kind"] + ":" + key["alternative"]).groupby(["list", "kind"]).size().unstack(fill_value=0)
    )
    # every list has about the same mix of kinds (the image rule costs some evenness)
    assert (kinds.max() - kinds.min() <= 3).all() and (kinds.std() < 1).all()
    by_set = key.loc[key["kind"] != "catch"].groupby(["list", "set_id"]).size().unstack(fill_value=0)
    assert (by_set.max() - by_set.min() <= 4).all()  # and of IRI sets
    appearances = check_image_rule(payloads)
    # correct position per kind: each place equally often
    judged = key.loc[key["kind"] != "catch"]  # one catch screen per list: its place is drawn
    positions = judged.groupby(["kind", "alternative"])["correct_shown"].agg(lambda c: np.bincount(c) / len(c))
    for (kind, alt), share in positions.items():
        assert np.abs(share - 1 / len(share)).max() < 0.02, (kind, alt, share)
    print(
        f"\ndefault design: {len(trials)} trials ({len(main)} judgments, "
        f"{(trials['kind'] == 'catch').sum()} catch) in {len(sizes)} lists of {sizes.min()}-{sizes.max()} screens "
        f"({settings['catch_per_participant']} catch each)\nscreens per list and kind (min-max):"
    )
    for kind in kinds.columns:
        print(f"  {kind}: {kinds[kind].min()}-{kinds[kind].max()}")
    print("images by the number of screens of a list that show them:", dict(sorted(appearances.items())))


def test_exposure_strategies_score_chance(design):
    """Answering by anything but the images' content scores chance +- 5
    points on every trial kind, over every list of the default design; on
    all trials in one list (the old page) the most-often-seen option answers
    the seed trials."""
    scores = exposure_scores(design["payloads"], design["key"], design["files"])
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print("\n" + scores.pivot(index="strategy", columns="kind", values="prop_correct").round(3).to_string())
    assert set(scores["strategy"]) == set(STRATEGIES) and scores["kind"].nunique() == 4
    off = scores.loc[(scores["prop_correct"] - scores["chance"]).abs() > 0.05]
    assert off.empty, off
    # the same strategies on every trial as one list, each with its table order
    trials, files = design["trials"], design["files"]
    everything = trials.loc[trials["kind"] != "catch"].reset_index(drop=True)
    load_set = default_design()[1]
    names, files = collect_stimuli(everything, load_set)
    shown = shown_images(everything, names)
    one = {
        "all": {
            "trials": [
                {"id": t, "query": f"stimuli/{q}", "options": [f"stimuli/{o}" for o in opts]}
                for t, (q, opts) in zip(everything["trial_id"], shown)
            ]
        }
    }
    key = everything.assign(trial=everything["trial_id"], correct_shown=everything["correct"])
    old = exposure_scores(one, key, files, orders=1).set_index(["strategy", "kind"])["prop_correct"]
    print(
        f"all trials in one list: most-often-seen {old.loc[('most-often-seen (whole list)', '2afc:seed')]:.3f} on 2afc:seed"
    )
    assert old.loc[("most-often-seen (whole list)", "2afc:seed")] > 0.9


def test_hosted_folder_holds_one_list_per_link(design, tmp_path):
    """The hosted folder of the default design: the page names no list; a
    list file holds that list's screens and nothing else; no file or file
    name holds a condition, a set, a target index or an answer."""
    page, payloads, key, files = design["page"], design["payloads"], design["key"], design["files"]
    site = tmp_path / "site"
    site.mkdir()
    write_site(site, page, payloads, files, PACKAGE)
    index = (site / "index.html").read_text()
    tokens = set(key["list_token"])
    screens = set(key["trial"])
    assert len(tokens) == len(payloads) and not any(t in index for t in tokens)
    assert not any(t in index for t in screens)
    words = {
        *design["trials"]["set_id"],
        *design["trials"]["trial_id"],
        *(w for s in design["trials"]["set_id"] for w in s.split("/")),
        "2afc",
        "matching",
        "catch",
        "feature",
        "seed",
        "other-target",
        "target",
        "iri",
        "top",
        "bottom",
        "correct",
        "alternative",
        "kind",
        "set_id",
    }
    texts = {"index.html": index}
    for token in tokens:
        path = site / "lists" / f"{token}.js"
        text = path.read_text()
        texts[path.name] = text
        own = set(key.loc[key["list_token"] == token, "trial"])
        ids = set(re.findall(r'"id": "([0-9a-f]+)"', text))
        assert ids == own  # this list's screens, no other list's
        assert not any(t in text for t in tokens - {token})
        payload = read_list_script(path)
        assert set(payload) == {"format", "survey_id", "list", "trials"}
        assert all(set(s) == SCREEN_KEYS for s in payload["trials"])
        assert [s["id"] for s in payload["trials"]] == sorted(own)  # in the order of the ids
    pattern = re.compile(
        r"(?<![0-9a-z])(" + "|".join(map(re.escape, sorted(words, key=len, reverse=True))) + r")(?![0-9a-z])", re.I
    )
    for name, text in texts.items():
        assert not pattern.search(text), (name, pattern.search(text))
    names = [p.name for p in site.rglob("*") if p.is_file()]
    assert all(re.fullmatch(r"[0-9a-f]{20}\.(png|js)|index\.html|survey\.(js|css)", n) for n in names), names
    # every stimulus of one shape has one size: the file size tells nothing
    assert len({len(b) for b in files.values()}) == 1
