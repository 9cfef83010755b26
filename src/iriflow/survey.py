"""The browser survey: the trials tables as a self-contained jsPsych folder
that runs from file:// or any static web host, with no network, and a key
file, kept apart, that says what each screen was.

Outputs of ``export_survey``::

    site/                the folder to host (or open from disk)
      index.html         the page: settings only (title, consent, post_url),
                         embedded as <script type="application/json" id="survey-data">
      survey.js          the experiment (survey/src/survey.js)
      survey.css         its styles (survey/src/survey.css)
      jspsych/           jsPsych and plugin builds pinned by survey/package-lock.json
      lists/<token>.js   one participant list each (``list_payload``)
      stimuli/<hash>.png one uncompressed PNG per image and list
    key.csv              trial -> condition, trials-table trial and answer (KEY_COLUMNS)
    links.csv            one link per list, to hand out in rotation

A participant opens ``index.html?list=<token>``; the page loads
``lists/<token>.js`` and nothing else of the study. List tokens, trial ids
and the salt they are drawn from are sha256 digests of the whole key (so
they are reproducible from the trials tables and settings, and cannot be
guessed from the page). A list file holds, per screen, an opaque id, the
query and option images in display order, the display size and the
question (``QUESTIONS``); nothing in the site says which option is correct,
what the condition is or which target is shown. An image has a name of its
own in each list (a digest of the key's salt, the list and the image's
content), so the order of names is drawn anew per list, and an image cannot
be followed from list to list; every image of one shape is stored
uncompressed, so all stimuli of a trial have the same file size.

Dealing (``make_lists``): the non-catch trials are split into disjoint
lists of nearly equal size, stratified by condition (set, kind,
alternative), so that every list has about the same mix of conditions and
every trial is judged equally often when the links are handed out in
rotation; each list also gets ``catch_per_participant`` catch trials from
the catch pool, used in turn. Within a list, familiarity with an image says
nothing about the answer: an image (by file content) is shown in at most
``REPEATS`` trials of a list, and two trials may share an option image only
when they show exactly the same options (a seed trial of one target for two
models, say); images shown as a query are never options elsewhere, and the
images of catch trials appear in no other trial. So every option of a
screen has been seen equally often, before and after it. The correct
option's display position is balanced per list and trial kind
(``display_orders``); ``key.csv`` records the order shown."""

from __future__ import annotations

import csv
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
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from PIL import Image

from .io import atomic_path
from .viz import to_uint8

# Participant ids: what survey.js accepts from the form or the URL, and all the
# importer ever sees from the survey. Keep in sync with PARTICIPANT_RE there.
PARTICIPANT_PATTERN = r"[A-Za-z0-9_-]{1,64}"
TOKEN_CHARS = 20  # list tokens and trial ids: 80 bits of sha256 (LIST_RE in survey.js)
APP_FILES = ("survey.js", "survey.css")
TEMPLATE = "index.html"
SITE = "site"
KEY_FILE = "key.csv"
LINKS_FILE = "links.csv"
# Where each jsPsych build comes from (under node_modules) and goes (under the site).
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
HASH_CHARS = 20  # stimulus names: 80 bits of sha256, collisions are not a practical concern
REPEATS = 2  # at most this many trials of a list show one image (then with identical options)
RETRIES = 8  # dealings with more lists before the judgments left over get lists of their own
NPM_TIMEOUT_S = 600
DATA_FORMAT = 2
# key.csv: one row per screen of every list (the catch trials once per list that shows them).
KEY_COLUMNS = (
    "survey_id",
    "list",
    "list_token",
    "trial",
    "set_id",
    "trial_id",
    "kind",
    "alternative",
    "target",
    "shown_order",
    "correct_shown",
)
# A blank page in the site's subfolders: servers that list folders show it instead.
BLANK = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title></title>'
    '<link rel="icon" href="data:,"></head><body></body></html>\n'
)


class SurveyError(ValueError):
    """Settings or inputs from which no usable survey can be made."""


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a of the text's UTF-16 code units (what JavaScript's
    charCodeAt yields; for ASCII ids these are the bytes). survey.js seeds
    each participant's trial order with it."""
    h = 0x811C9DC5
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h ^= units[i] | (units[i + 1] << 8)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def valid_participant(participant: str) -> bool:
    return re.fullmatch(PARTICIPANT_PATTERN, participant) is not None


# --- participant lists ---------------------------------------------------------


class _ListState:
    """The images one list shows so far: image -> [sharing key, trials]."""

    def __init__(self) -> None:
        self.members: list[int] = []
        self.images: dict[str, list] = {}

    def fits(self, claims: Sequence[tuple[str, tuple]]) -> bool:
        for image, key in claims:
            held = self.images.get(image)
            if held is not None and (held[0] != key or held[1] >= REPEATS):
                return False
        return True

    def add(self, row: int, claims: Sequence[tuple[str, tuple]]) -> None:
        self.members.append(row)
        for image, key in claims:
            self.images.setdefault(image, [key, 0])[1] += 1

    def remove(self, row: int, claims: Sequence[tuple[str, tuple]]) -> None:
        self.members.remove(row)
        for image, _ in claims:
            self.images[image][1] -= 1
            if not self.images[image][1]:
                del self.images[image]


def _claims(trials: pd.DataFrame, shown: Sequence[tuple[str, Sequence[str]]]) -> list[list[tuple[str, tuple]]]:
    """Per row, the images it shows with the key under which another trial of
    the same list may show them too: options only beside exactly the same
    options, a query only as a query, a catch trial's images never."""
    out = []
    for r, (kind, (query, options)) in enumerate(zip(trials["kind"], shown)):
        # images in the order shown, each once (not a set: the order of a
        # set of strings changes with the process's hash seed, and the
        # dealing reads the first option's claim)
        if kind == "catch":
            out.append([(image, ("catch", r)) for image in dict.fromkeys([query, *options])])
        else:
            key = ("options", *sorted(options))
            out.append([(query, ("query",)), *((o, key) for o in dict.fromkeys(options))])
    return out


def make_lists(
    trials: pd.DataFrame,
    shown: Sequence[tuple[str, Sequence[str]]],
    trials_per_participant: int,
    catch_per_participant: int,
    seed: int,
) -> list[list[int]]:
    """Row positions of ``trials`` for each participant list (module docstring).

    ``shown[r]`` names the images row r shows: (query, options), names equal
    exactly when the images are. Each list has at most
    ``trials_per_participant`` rows, of which ``min(catch_per_participant,
    number of catch trials)`` are catch trials; every non-catch row is in
    exactly one list; per condition (set_id, kind, alternative) the lists'
    counts differ by at most one where the image rule allows (greedy:
    the least-filled list that can take a trial gets it). When the image
    rule leaves judgments over, the dealing starts again with as many more
    lists as the share left over (at least one more), up to RETRIES times;
    what is still left over then is dealt into lists of its own.
    ``trials_per_participant`` is an upper bound."""
    if trials_per_participant < 1 or catch_per_participant < 0:
        raise SurveyError(
            f"need trials_per_participant >= 1 and catch_per_participant >= 0, got "
            f"{trials_per_participant} and {catch_per_participant}"
        )
    kind = trials["kind"].to_numpy()
    catch = np.flatnonzero(kind == "catch")
    main = np.flatnonzero(kind != "catch")
    n_catch = min(catch_per_participant, len(catch))
    per_list = trials_per_participant - n_catch
    if per_list < 1 and len(main):
        raise SurveyError(
            f"survey.trials_per_participant ({trials_per_participant}) must exceed "
            f"survey.catch_per_participant ({n_catch}) to leave room for judgments"
        )
    claims = _claims(trials, shown)
    condition = trials.groupby(["set_id", "kind", "alternative"], sort=True).ngroup().to_numpy()
    kind_alt = trials.groupby(["kind", "alternative"], sort=True).ngroup().to_numpy()
    rng = np.random.default_rng(seed)
    lists: list[list[int]] = []
    while True:
        n = max(1, math.ceil(len(main) / per_list)) if len(main) else 1
        for _ in range(RETRIES):
            dealt, left = _deal(trials, claims, main, catch, n_catch, per_list, condition, kind_alt, n, rng)
            if not len(left) or n >= len(main):
                break
            n = min(len(main), max(n + 1, math.ceil(n * len(main) / max(1, len(main) - len(left)))))
        if len(left) == len(main):
            raise SurveyError(
                f"cannot deal the trials into lists that show every image in at most {REPEATS} trials "
                "(even one judgment per list fails)"
            )
        lists += dealt
        if not len(left):
            return lists
        main = left  # the few that did not fit: lists of their own


def _deal(
    trials, claims, main, catch, n_catch, per_list, condition, kind_alt, n_lists, rng
) -> tuple[list[list[int]], np.ndarray]:
    """One dealing of the judgments ``main`` into ``n_lists`` lists of at
    most ``per_list`` judgments: (lists, rows that fit none)."""
    n_options = trials["n_options"].to_numpy()
    state = [_ListState() for _ in range(n_lists)]
    # conditions in turn (each condition's rows shuffled), the trials with
    # most options (hardest to place) first within a turn
    rank = np.empty(len(trials))
    for c in np.unique(condition[main]):
        rows = main[condition[main] == c]
        rank[rng.permutation(rows)] = np.arange(len(rows)) / len(rows)
    order = main[np.lexsort((rng.random(len(main)), -n_options[main], rank[main]))]
    # Catch trials first, used in turn: they claim their images (for no
    # other trial of the list) before the judgments are dealt.
    uses = np.zeros(len(catch))
    for st in state:
        for _ in range(n_catch):
            j = next((j for j in np.lexsort((rng.random(len(catch)), uses)) if st.fits(claims[catch[j]])), None)
            if j is None:
                raise SurveyError(
                    f"the catch trials cannot give {n_catch} per list with disjoint images; "
                    "lower survey.catch_per_participant"
                )
            st.add(int(catch[j]), claims[catch[j]])
            uses[j] += 1
    # the judgments whose images the catch trials of most lists hold go first
    held = Counter(image for st in state for image in st.images)
    blocked = np.array([sum(held[image] for image, _ in claims[r]) for r in order])
    order = order[np.argsort(-blocked, kind="stable")]
    holders: dict[tuple, list[int]] = {}  # (image, sharing key) -> lists that show it so
    by_condition = np.zeros((n_lists, condition.max(initial=0) + 1))
    by_kind = np.zeros((n_lists, kind_alt.max(initial=0) + 1))
    size = np.zeros(n_lists)

    def place(r: int) -> bool:
        # a list that already shows these options (a trial of another set) saves images
        paired = np.zeros(n_lists, bool)
        paired[holders.get(claims[r][1], [])] = True
        prefer = np.lexsort(
            (rng.random(n_lists), size, by_kind[:, kind_alt[r]], by_condition[:, condition[r]], ~paired)
        )
        target = next((l for l in prefer if size[l] < per_list and state[l].fits(claims[r])), None)
        if target is None:
            return False
        state[target].add(int(r), claims[r])
        holders.setdefault(claims[r][1], []).append(int(target))
        by_condition[target, condition[r]] += 1
        by_kind[target, kind_alt[r]] += 1
        size[target] += 1
        return True

    left = [r for r in order if not place(r)]
    return [sorted(s.members) for s in state], np.array(sorted(left), dtype=np.int64)


def display_orders(trials: pd.DataFrame, lists: Sequence[Sequence[int]], seed: int) -> list[dict[int, list[int]]]:
    """For each list, row -> the trials-table option indices in the order
    shown. Per list and (kind, alternative) the correct option's position
    runs through 0..k-1 equally often (k options), in a shuffled order; the
    other options fill the other places in a random order."""
    rng = np.random.default_rng([seed, 1])
    correct = trials["correct"].to_numpy()
    n_options = trials["n_options"].to_numpy()
    groups = trials.groupby(["kind", "alternative"], sort=True).ngroup().to_numpy()
    out = []
    for members in lists:
        members = np.asarray(members, dtype=np.int64)
        orders: dict[int, list[int]] = {}
        for g in np.unique(groups[members]):
            rows = members[groups[members] == g]
            for k in np.unique(n_options[rows]):
                same = rng.permutation(rows[n_options[rows] == k])
                start = int(rng.integers(k))
                for i, r in enumerate(same):
                    others = [int(o) for o in rng.permutation(k) if o != correct[r]]
                    place = (start + i) % k
                    orders[int(r)] = others[:place] + [int(correct[r])] + others[place:]
        out.append(orders)
    return out


# --- stimuli -------------------------------------------------------------------


def png_bytes(image: np.ndarray) -> bytes:
    """One [C,H,W] image (floats in [0,1] or uint8; C = 1 or 3) as PNG bytes,
    stored without compression: every image of one shape gives a file of the
    same size (a file's size cannot tell a noise image from a digit).
    Deterministic: no timestamps or text chunks."""
    arr = to_uint8(np.asarray(image)[None])[0]
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise SurveyError(f"images must be [C,H,W] with 1 or 3 channels, got shape {arr.shape}")
    pil = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=False, compress_level=0)
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


def shown_images(trials: pd.DataFrame, names: Mapping[tuple[str, str], str]) -> list[tuple[str, list[str]]]:
    """Per row: (query file, option files in the trials table's order)."""
    return [
        (names[(s, q)], [names[(s, o)] for o in opts.split("|")])
        for s, q, opts in zip(trials["set_id"], trials["query"], trials["options"])
    ]


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


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def build_survey(
    trials: pd.DataFrame,
    names: Mapping[tuple[str, str], str],
    sizes: Mapping[str, int],
    settings: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], pd.DataFrame, dict[str, str]]:
    """The page data, the list files' payloads ({token: payload}), the key
    (KEY_COLUMNS) and the stimulus names of the site ({site name: name})
    of ``trials`` (row positions 0..n-1) whose images are named by
    ``names``; ``sizes`` maps set_id to its images' native size."""
    shown = shown_images(trials, names)
    seed = int(settings["seed"])
    lists = make_lists(trials, shown, settings["trials_per_participant"], settings["catch_per_participant"], seed)
    orders = display_orders(trials, lists, seed)
    # Everything the tokens may depend on: the trials, their images, the dealing.
    salt = _digest(
        pd.util.hash_pandas_object(trials, index=False).to_numpy().tobytes().hex(),
        canonical_json([shown, [[(r, orders[i][r]) for r in m] for i, m in enumerate(lists)]]),
    )
    survey_id = _digest(salt, "survey")[:12]
    questions = [QUESTIONS.get(k, "similar") for k in trials["kind"]]
    px = [display_size(int(sizes[s]), int(settings["image_px"])) for s in trials["set_id"]]
    payloads: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    key_rows = []
    for number, members in enumerate(lists):
        token = _digest(salt, "list", str(number))[:TOKEN_CHARS]
        screens = []
        for r in members:
            trial = _digest(salt, "trial", str(number), str(r))[:TOKEN_CHARS]
            order = orders[number][r]
            query, options = shown[r]

            def alias(name: str, token: str = token) -> str:
                """The image's name in this list (module docstring)."""
                site_name = _digest(salt, "image", token, name)[:HASH_CHARS] + ".png"
                aliases[site_name] = name
                return f"stimuli/{site_name}"

            screens.append(
                {
                    "id": trial,
                    "query": alias(query),
                    "options": [alias(options[o]) for o in order],
                    "px": px[r],
                    "question": questions[r],
                }
            )
            row = trials.iloc[r]
            key_rows.append(
                (
                    survey_id,
                    number,
                    token,
                    trial,
                    row["set_id"],
                    row["trial_id"],
                    row["kind"],
                    row["alternative"],
                    int(row["target"]),
                    "|".join(map(str, order)),
                    order.index(int(row["correct"])),
                )
            )
        screens.sort(key=lambda s: s["id"])  # the file's order says nothing either
        payloads[token] = {"format": DATA_FORMAT, "survey_id": survey_id, "list": token, "trials": screens}
    if len(payloads) != len(lists):
        raise SurveyError("two lists got the same token; change survey.seed")
    key = pd.DataFrame(key_rows, columns=list(KEY_COLUMNS))
    if not key["trial"].is_unique:
        raise SurveyError("two screens got the same id; change survey.seed")
    page = {
        "format": DATA_FORMAT,
        "survey_id": survey_id,
        "title": settings["title"],
        "consent": list(settings["consent"]),
        "post_url": settings["post_url"],
        "shuffle_key": seed,
        "participant_pattern": PARTICIPANT_PATTERN,
    }
    return page, payloads, key, aliases


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def embed_json(obj: Any) -> str:
    """JSON safe inside a <script> element: '<', '>' and '&' escaped, so no
    value can close the element or open a comment."""
    text = json.dumps(obj, indent=1, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def list_script(payload: Mapping[str, Any]) -> str:
    """A list file: a script (loadable from file://, where fetch is not) that
    hands the list to survey.js. Only JSON data, escaped as for embedding."""
    return f"iriSurveyList({embed_json(payload)});\n"


def read_list_script(path: str | os.PathLike) -> dict[str, Any]:
    """The payload of a list file written by ``list_script``."""
    return _json_in(path, r"\AiriSurveyList\((.*)\);\n\Z", "not a survey list file")


def _json_in(path: str | os.PathLike, pattern: str, problem: str) -> dict[str, Any]:
    """The JSON that ``pattern``'s first group finds in a file the export wrote."""
    m = re.search(pattern, Path(path).read_text(encoding="utf-8"), re.S)
    if not m:
        raise SurveyError(f"{path}: {problem}")
    return json.loads(m.group(1))


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


def prepare_survey(
    trials: pd.DataFrame, load_set: Callable[[str], Mapping[str, np.ndarray]], settings: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], pd.DataFrame, dict[str, bytes]]:
    """Everything ``export_survey`` writes but the app files: page data, list
    payloads, key and stimulus files (checks the trials and settings)."""
    if trials.empty:
        raise SurveyError("the trials tables are empty: no IRI set has a trial to show")
    if not trials["trial_id"].is_unique:
        dup = trials.loc[trials["trial_id"].duplicated(), "trial_id"].iloc[0]
        raise SurveyError(f"trial_id {dup!r} appears more than once in the trials tables")
    check_post_url(settings["post_url"])
    trials = trials.reset_index(drop=True)
    sizes: dict[str, int] = {}

    def load_and_measure(set_id: str) -> Mapping[str, np.ndarray]:
        images = load_set(set_id)
        sizes[set_id] = int(max(np.asarray(next(iter(images.values()))).shape[-2:]))
        return images

    names, files = collect_stimuli(trials, load_and_measure)
    page, payloads, key, aliases = build_survey(trials, names, sizes, settings)
    return page, payloads, key, {site_name: files[name] for site_name, name in aliases.items()}


def write_site(
    dest: Path,
    page: Mapping[str, Any],
    payloads: Mapping[str, Mapping[str, Any]],
    files: Mapping[str, bytes],
    package_dir: str | os.PathLike,
) -> None:
    """The site's own files into the existing folder ``dest``: the page, the
    app, the list files and the stimuli (everything but jsPsych)."""
    package_dir = Path(package_dir)
    for folder in ("stimuli", "lists"):
        (dest / folder).mkdir()
        (dest / folder / "index.html").write_text(BLANK)
    for name, blob in files.items():
        (dest / "stimuli" / name).write_bytes(blob)
    for token, payload in payloads.items():
        (dest / "lists" / f"{token}.js").write_text(list_script(payload), encoding="utf-8")
    for name in APP_FILES:
        shutil.copyfile(package_dir / "src" / name, dest / name)
    template = (package_dir / "src" / TEMPLATE).read_text(encoding="utf-8")
    (dest / "index.html").write_text(render_page(template, page), encoding="utf-8")


def export_survey(
    trials: pd.DataFrame,
    load_set: Callable[[str], Mapping[str, np.ndarray]],
    out_dir: str | os.PathLike,
    settings: Mapping[str, Any],
    *,
    package_dir: str | os.PathLike,
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    """Write the survey (module docstring) for ``trials`` (the concatenated
    trials tables) into ``out_dir``: ``site/``, ``key.csv`` and
    ``links.csv``; ``settings`` is the config's ``survey`` section. The site
    is built beside its place and moved there only when complete; the key
    and links are written atomically after it. Returns the page data."""
    log = log or logging.getLogger(__name__)
    package_dir = Path(package_dir)
    out_dir = Path(out_dir)
    page, payloads, key, files = prepare_survey(trials, load_set, settings)
    site = out_dir / SITE
    out_dir.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{SITE}.", dir=out_dir))
    try:
        versions = install_jspsych(build, package_dir, log)
        write_site(build, page, payloads, files, package_dir)
        _write_notice(build, versions)
        for path in [build, *build.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if site.exists():
            shutil.rmtree(site)
        build.rename(site)
    finally:
        if build.exists():
            shutil.rmtree(build)
    with atomic_path(out_dir / KEY_FILE) as tmp:
        key.to_csv(tmp, index=False)
    links = key.groupby(["list", "list_token"], sort=True).size().rename("n_trials").reset_index()
    links["link"] = "index.html?list=" + links["list_token"]
    with atomic_path(out_dir / LINKS_FILE) as tmp:
        links.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
    sizes = links["n_trials"]
    log.info(
        "survey %s: %d trials (%d catch) from %d IRI sets, %d images, %d lists of %d-%d trials "
        "(%d catch each); jsPsych %s",
        page["survey_id"],
        len(trials),
        int((trials["kind"] == "catch").sum()),
        trials["set_id"].nunique(),
        len(files),
        len(links),
        sizes.min(),
        sizes.max(),
        int((key["kind"] == "catch").sum() // len(links)),
        versions.get("jspsych", "?"),
    )
    return page


def read_embedded_data(index_html: str | os.PathLike) -> dict[str, Any]:
    """The page data embedded in an exported index.html."""
    return _json_in(
        index_html, r'<script type="application/json" id="survey-data">(.*?)</script>', "no survey-data block"
    )


def read_key(path: str | os.PathLike) -> pd.DataFrame:
    """A survey's key.csv (KEY_COLUMNS)."""
    text = ("survey_id", "list_token", "trial", "set_id", "trial_id", "kind", "alternative", "shown_order")
    key = pd.read_csv(path, keep_default_na=False, dtype=dict.fromkeys(text, str))
    missing = [c for c in KEY_COLUMNS if c not in key.columns]
    if missing:
        raise SurveyError(f"{path}: not a survey key file (missing columns {missing})")
    return key
