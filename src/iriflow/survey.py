"""The browser survey: the trials tables as a self-contained jsPsych folder
that runs from file:// or any static web host, with no network.

Folder layout (``export_survey``)::

    index.html       the page; the survey data is embedded in it as a
                     <script type="application/json" id="survey-data"> block
    survey.js        the experiment (survey/src/survey.js)
    survey.css       its styles (survey/src/survey.css)
    jspsych/         jsPsych and plugin builds pinned by survey/package-lock.json
    stimuli/         one PNG per distinct image, named by a hash of its bytes

The embedded data (``survey_data``) holds the settings, every trial (its
``trial_id``, ``set_id``, the query image, the option images in the
trials table's display order and the ``question`` asked: ``"activation"``
for feature-2afc trials, which ask which image makes the visualised unit
respond more, else ``"similar"``, which asks which image looks most like
the query; survey.js holds the wording) and the participant lists. It does not say
which option is correct: scoring happens after import, against the trials
table (iriflow.responses.load_responses).

Participant lists (``make_lists``): the non-catch trials are dealt into
``n_lists`` disjoint lists of nearly equal size, stratified by condition
(set, kind, alternative), so that every list covers every condition about
equally and every trial is judged equally often when lists are filled
evenly; each list also gets ``catch_per_participant`` catch trials, drawn in
turn from the catch pool. A participant takes list ``?list=<n>`` from the
URL, or else list ``assign_list(participant_id, n_lists)`` (FNV-1a hash of
the id), and sees its trials in an order shuffled with a seed derived from
the id. ``survey.js`` implements the same hash (tests check they agree)."""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from PIL import Image

from .viz import to_uint8

# Participant ids: what survey.js accepts from the form or the URL, and all the
# importer ever sees from the survey. Keep in sync with PARTICIPANT_RE there.
PARTICIPANT_PATTERN = r"[A-Za-z0-9_-]{1,64}"
APP_FILES = ("survey.js", "survey.css")
TEMPLATE = "index.html"
# Where each jsPsych build comes from (under node_modules) and goes (under the folder).
ASSETS = {
    "jspsych/jspsych.js": "jspsych/dist/index.browser.min.js",
    "jspsych/jspsych.css": "jspsych/css/jspsych.css",
    "jspsych/plugin-html-button-response.js": "@jspsych/plugin-html-button-response/dist/index.browser.min.js",
    "jspsych/plugin-instructions.js": "@jspsych/plugin-instructions/dist/index.browser.min.js",
    "jspsych/plugin-preload.js": "@jspsych/plugin-preload/dist/index.browser.min.js",
    "jspsych/plugin-survey-html-form.js": "@jspsych/plugin-survey-html-form/dist/index.browser.min.js",
}
# The question each trial kind asks (texts in survey.js); the rest ask "similar".
QUESTIONS = {"feature-2afc": "activation"}
HASH_CHARS = 20  # 80 bits of sha256: collisions are not a practical concern
NPM_TIMEOUT_S = 600
DATA_FORMAT = 1


class SurveyError(ValueError):
    """Settings or inputs from which no usable survey can be made."""


# --- participant lists ---------------------------------------------------------


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a of the text's UTF-16 code units (what JavaScript's
    charCodeAt yields; for ASCII ids these are the bytes)."""
    h = 0x811C9DC5
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h ^= units[i] | (units[i + 1] << 8)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def valid_participant(participant: str) -> bool:
    return re.fullmatch(PARTICIPANT_PATTERN, participant) is not None


def assign_list(participant: str, n_lists: int) -> int:
    """The list a participant without a ``list`` URL parameter gets."""
    if not valid_participant(participant):
        raise SurveyError(f"participant id {participant!r} does not match {PARTICIPANT_PATTERN}")
    return fnv1a32(participant) % n_lists


def make_lists(
    trials: pd.DataFrame, trials_per_participant: int, catch_per_participant: int, seed: int
) -> list[list[int]]:
    """Row positions of ``trials`` for each participant list (module docstring).

    Each list has at most ``trials_per_participant`` rows, of which
    ``min(catch_per_participant, number of catch trials)`` are catch trials;
    every non-catch row is in exactly one list, and per condition (set_id,
    kind, alternative) list counts differ by at most one."""
    if trials_per_participant < 1 or catch_per_participant < 0:
        raise SurveyError(
            f"need trials_per_participant >= 1 and catch_per_participant >= 0, got "
            f"{trials_per_participant} and {catch_per_participant}"
        )
    rng = np.random.default_rng(seed)
    kind = trials["kind"].to_numpy()
    catch = np.flatnonzero(kind == "catch")
    n_catch = min(catch_per_participant, len(catch))
    per_list = trials_per_participant - n_catch
    main = trials.loc[kind != "catch", ["set_id", "kind", "alternative"]]
    if per_list < 1 and len(main):
        raise SurveyError(
            f"survey.trials_per_participant ({trials_per_participant}) must exceed "
            f"survey.catch_per_participant ({n_catch}) to leave room for judgments"
        )
    n_lists = max(1, math.ceil(len(main) / per_list)) if len(main) else 1
    # Deal a sequence that runs through the conditions one after the other
    # (each shuffled) round-robin: per condition and in total, list sizes
    # differ by at most one.
    sequence = []
    for _, rows in main.groupby(["set_id", "kind", "alternative"], sort=True):
        sequence.extend(rng.permutation(rows.index.to_numpy()))
    position = {label: i for i, label in enumerate(trials.index)}
    lists: list[list[int]] = [[] for _ in range(n_lists)]
    for i, label in enumerate(sequence):
        lists[i % n_lists].append(position[label])
    catch_order = rng.permutation(catch)
    for l, members in enumerate(lists):
        members.extend(int(catch_order[(l * n_catch + j) % len(catch)]) for j in range(n_catch))
        members.sort()
    return lists


# --- stimuli -------------------------------------------------------------------


def png_bytes(image: np.ndarray) -> bytes:
    """One [C,H,W] image (floats in [0,1] or uint8; C = 1 or 3) as PNG bytes.
    Deterministic: no timestamps or text chunks."""
    arr = to_uint8(np.asarray(image)[None])[0]
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise SurveyError(f"images must be [C,H,W] with 1 or 3 channels, got shape {arr.shape}")
    pil = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def stimulus_name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS] + ".png"


def collect_stimuli(
    trials: pd.DataFrame, load_set: Callable[[str], Mapping[str, np.ndarray]]
) -> tuple[dict[tuple[str, str], str], dict[str, bytes]]:
    """PNG files for every image the trials show.

    ``load_set(set_id)`` returns the set's images as {"iri", "target", "seed"}
    -> [N,C,H,W]. Returns {(set_id, ref): file name} and {file name: bytes};
    identical images (a target shared by several sets) share one file."""
    names: dict[tuple[str, str], str] = {}
    files: dict[str, bytes] = {}
    for set_id, rows in trials.groupby("set_id", sort=True):
        refs = set(rows["query"]) | {o for opts in rows["options"] for o in opts.split("|")}
        images = load_set(set_id)
        for ref in sorted(refs):
            kind, _, idx = ref.partition(":")
            if kind not in images or not idx.isdigit() or int(idx) >= len(images[kind]):
                raise SurveyError(
                    f"set {set_id}: image reference {ref!r} is not in its IRI set "
                    f"(kinds {sorted(images)}, {len(next(iter(images.values())))} images each)"
                )
            data = png_bytes(images[kind][int(idx)])
            name = stimulus_name(data)
            names[(set_id, ref)] = name
            files[name] = data
    return names, files


# --- the page ------------------------------------------------------------------


def check_post_url(url: str) -> str:
    """'' or an absolute http(s) URL; returns its origin (for the page's
    Content-Security-Policy) or ''."""
    if not url:
        return ""
    expected = "expected '' or an absolute http(s) URL of one host, e.g. https://example.org/collect"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError as e:
        raise SurveyError(f"survey.post_url {url!r} is not a URL ({e}); {expected}") from e
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c in url for c in " \"'<>;,\\"):
        raise SurveyError(f"survey.post_url {url!r} is not an absolute http(s) URL; {expected}")
    # The origin becomes the page's Content-Security-Policy connect-src: a
    # wildcard there ('https://*') would let the page send data to any host.
    host = parts.netloc if port is None else parts.netloc[: parts.netloc.rfind(":")]
    if not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", host):
        raise SurveyError(
            f"survey.post_url {url!r}: the host {parts.netloc!r} is not a plain host name (no wildcard '*', "
            f"no user:password@); {expected}"
        )
    return f"{parts.scheme}://{parts.netloc}"


def display_size(native: int, wanted: int) -> int:
    """On-screen size: the largest whole multiple of the native size not above
    ``wanted`` (crisp nearest-neighbour scaling), or ``wanted`` for images
    larger than that."""
    return native * (wanted // native) if native <= wanted else wanted


def survey_data(
    trials: pd.DataFrame,
    names: Mapping[tuple[str, str], str],
    sizes: Mapping[str, int],
    lists: Sequence[Sequence[int]],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """What index.html embeds (module docstring); ``sizes`` maps set_id to
    its images' native size in pixels."""
    records = []
    for r in trials.itertuples(index=False):
        records.append(
            {
                "trial_id": r.trial_id,
                "set_id": r.set_id,
                "query": f"stimuli/{names[(r.set_id, r.query)]}",
                "options": [f"stimuli/{names[(r.set_id, o)]}" for o in r.options.split("|")],
                "question": QUESTIONS.get(r.kind, "similar"),
                "px": display_size(int(sizes[r.set_id]), int(settings["image_px"])),
            }
        )
    data = {
        "format": DATA_FORMAT,
        "title": settings["title"],
        "consent": list(settings["consent"]),
        "post_url": settings["post_url"],
        "order_seed": int(settings["seed"]),
        "participant_pattern": PARTICIPANT_PATTERN,
        "trials": records,
        "lists": [sorted(int(i) for i in members) for members in lists],
    }
    data["survey_id"] = hashlib.sha256(canonical_json(data).encode()).hexdigest()[:12]
    return data


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def embed_json(obj: Any) -> str:
    """JSON safe inside a <script> element: '<', '>' and '&' escaped, so no
    value can close the element or open a comment."""
    text = json.dumps(obj, indent=1, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(template: str, data: Mapping[str, Any]) -> str:
    """index.html from the template: {{TITLE}}, {{CSP_CONNECT}} and {{DATA}}
    are filled in one pass (a value is never re-scanned for placeholders)."""
    connect = check_post_url(data["post_url"]) or "'none'"
    values = {"TITLE": html.escape(data["title"]), "CSP_CONNECT": connect, "DATA": embed_json(data)}
    missing = [k for k in values if "{{" + k + "}}" not in template]
    if missing:
        raise SurveyError(f"the page template lacks the placeholders {missing}")
    return re.sub(r"\{\{(TITLE|CSP_CONNECT|DATA)\}\}", lambda m: values[m.group(1)], template)


# --- jsPsych from npm ----------------------------------------------------------


def _run_npm(args: list[str], cwd: Path, log: logging.Logger) -> subprocess.CompletedProcess:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}
    proc = subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, env=env)
    for line in (proc.stdout + proc.stderr).strip().splitlines():
        log.info("npm: %s", line)
    return proc


def install_jspsych(
    dest: str | os.PathLike, package_dir: str | os.PathLike, log: logging.Logger | None = None
) -> dict[str, str]:
    """Install the packages pinned by ``package_dir``/package-lock.json into a
    scratch folder (``npm ci``: the lock's exact versions and integrity
    hashes; from npm's cache when it has them, else from the registry) and
    copy the browser builds to ``dest`` (ASSETS). Returns {package: version}."""
    log = log or logging.getLogger(__name__)
    package_dir = Path(package_dir)
    if shutil.which("npm") is None:
        raise SurveyError(
            "npm is not on PATH: install Node.js (>= 18), or run the workflow with "
            "--sdm conda (envs/survey.yaml provides it)"
        )
    with tempfile.TemporaryDirectory(prefix="iriflow-npm-") as tmp:
        scratch = Path(tmp)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(package_dir / name, scratch / name)
        base = ["ci", "--ignore-scripts", "--no-audit", "--no-fund"]
        proc = _run_npm(base + ["--offline"], scratch, log)
        if proc.returncode != 0:
            log.info("npm ci --offline failed (packages not cached); fetching from the registry")
            proc = _run_npm(base + ["--prefer-offline"], scratch, log)
        if proc.returncode != 0:
            raise SurveyError(
                f"npm ci failed (exit {proc.returncode}) in a copy of {package_dir}:\n"
                f"{(proc.stdout + proc.stderr).strip()[-2000:]}"
            )
        modules = scratch / "node_modules"
        dest = Path(dest)
        for target, source in ASSETS.items():
            (dest / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(modules / source, dest / target)
        lock = json.loads((package_dir / "package-lock.json").read_text())
        wanted = lock["packages"][""]["dependencies"]
        versions = {}
        for name in sorted(wanted):
            meta = json.loads((modules / name / "package.json").read_text())
            versions[name] = meta["version"]
        return versions


def _write_notice(dest: Path, versions: Mapping[str, str]) -> None:
    lines = ["Third-party code in this folder (all MIT licensed, https://www.jspsych.org):", ""]
    lines += [f"  {name} {version}" for name, version in versions.items()]
    (dest / "NOTICE.txt").write_text("\n".join(lines) + "\n")


# --- export --------------------------------------------------------------------


def export_survey(
    trials: pd.DataFrame,
    load_set: Callable[[str], Mapping[str, np.ndarray]],
    out_dir: str | os.PathLike,
    settings: Mapping[str, Any],
    *,
    package_dir: str | os.PathLike,
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    """Write the survey folder (module docstring) for ``trials`` (the
    concatenated trials tables); ``settings`` is the config's ``survey``
    section. The folder is built beside ``out_dir`` and moved into place only
    when complete. Returns the embedded data."""
    log = log or logging.getLogger(__name__)
    package_dir = Path(package_dir)
    out_dir = Path(out_dir)
    if trials.empty:
        raise SurveyError("the trials tables are empty: no IRI set has a trial to show")
    if not trials["trial_id"].is_unique:
        dup = trials.loc[trials["trial_id"].duplicated(), "trial_id"].iloc[0]
        raise SurveyError(f"trial_id {dup!r} appears more than once in the trials tables")
    check_post_url(settings["post_url"])
    trials = trials.reset_index(drop=True)
    lists = make_lists(trials, settings["trials_per_participant"], settings["catch_per_participant"], settings["seed"])
    sizes: dict[str, int] = {}

    def load_and_measure(set_id: str) -> Mapping[str, np.ndarray]:
        images = load_set(set_id)
        sizes[set_id] = int(max(np.asarray(next(iter(images.values()))).shape[-2:]))
        return images

    names, files = collect_stimuli(trials, load_and_measure)
    data = survey_data(trials, names, sizes, lists, settings)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        versions = install_jspsych(build, package_dir, log)
        (build / "stimuli").mkdir()
        for name, blob in files.items():
            (build / "stimuli" / name).write_bytes(blob)
        for name in APP_FILES:
            shutil.copyfile(package_dir / "src" / name, build / name)
        template = (package_dir / "src" / TEMPLATE).read_text(encoding="utf-8")
        (build / "index.html").write_text(render_page(template, data), encoding="utf-8")
        _write_notice(build, versions)
        for path in [build, *build.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        build.rename(out_dir)
    finally:
        if build.exists():
            shutil.rmtree(build)
    sizes_list = [len(m) for m in lists]
    log.info(
        "survey %s: %d trials (%d catch) from %d IRI sets, %d images, %d lists of %d-%d trials; jsPsych %s",
        data["survey_id"],
        len(trials),
        int((trials["kind"] == "catch").sum()),
        trials["set_id"].nunique(),
        len(files),
        len(lists),
        min(sizes_list),
        max(sizes_list),
        versions.get("jspsych", "?"),
    )
    return data


def read_embedded_data(index_html: str | os.PathLike) -> dict[str, Any]:
    """The survey data embedded in an exported index.html."""
    text = Path(index_html).read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="survey-data">(.*?)</script>', text, re.S)
    if not m:
        raise SurveyError(f"{index_html}: no survey-data block")
    return json.loads(m.group(1))
