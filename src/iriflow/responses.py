"""Judgment responses: the one schema shared by simulated and real observers,
and strict importers for real ones.

Schema (``RESPONSE_COLUMNS``, dtypes in ``RESPONSE_DTYPES``), one row per
answer of one participant to one trial of the trials table (iriflow.judgments):

- ``participant`` (str): participant id, unique across observers.
- ``set_id`` (str): the IRI set the trial belongs to.
- ``trial_id`` (str): the trial answered (unique within a trials table).
- ``response`` (int64): index of the chosen option, 0-based, in display order.
- ``correct`` (bool): response equals the trial's correct index.
- ``rt_ms`` (float64): response time in ms; NaN when unknown (simulated).
- ``observer`` (str): ``"real"`` or ``"simulated:<metric>"``.

Importers read jsPsych's data export (CSV or JSON: one row per trial event;
our survey adds ``participant``, ``trial_id`` and ``response`` to every
judgment trial, and rows without a ``trial_id`` such as instructions or
consent are ignored; ``set_id`` is optional there) and a generic CSV with
exactly the columns participant, set_id, trial_id, response[, rt_ms].

The survey's screens carry opaque ids and show the options in an order of
their own; its key file (iriflow.survey.KEY_COLUMNS, written beside the
hosted folder) maps each screen id to its trial, set and option order.
``load_responses`` with ``key`` translates such rows into the trials
table's ids and option indices before checking them; rows that already
name trials of the table (generic files) pass unchanged. They return the
raw columns plus ``source``, where each row was in the file ("row 3 (line 4)"
for CSV: data rows counted from 1 after the header; "index 5" for JSON: the
array index). ``check_response_file`` checks a file on its own (the
workflow does that when it plans a run); ``load_responses`` also validates
it against the trials table. Any problem raises ``ResponseError`` naming the
file, the row and the column; no partial data is ever returned.

Cells are held to what the survey itself records: participant codes of 1-64
letters, digits, '-' or '_' (iriflow.survey.PARTICIPANT_PATTERN, the rule of
the survey page, so a code cannot smuggle markup or a spreadsheet formula
into tables), option indices that fit an int64 and are not negative, and
response times from 0 to 24 h in ms (or empty)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESPONSE_COLUMNS = ("participant", "set_id", "trial_id", "response", "correct", "rt_ms", "observer")
RESPONSE_DTYPES = {
    "participant": "str",
    "set_id": "str",
    "trial_id": "str",
    "response": "int64",
    "correct": "bool",
    "rt_ms": "float64",
    "observer": "str",
}
ID_COLUMNS = ("participant", "set_id", "trial_id")
GENERIC_COLUMNS = ("participant", "set_id", "trial_id", "response")
JSPSYCH_COLUMNS = ("participant", "trial_id", "response")  # set_id: from the key
GENERIC_OPTIONAL = ("rt_ms",)
RAW_COLUMNS = ("participant", "set_id", "trial_id", "response", "rt_ms", "source")
JSPSYCH_MARKERS = ("trial_type", "trial_index", "internal_node_id")
MAX_REPORTED = 20
MAX_RT_MS = 24 * 3600 * 1000.0  # a day: anything longer is not a response time
MAX_OPTION = 2**31 - 1  # far above any trial's options; larger values would overflow
PARTICIPANT_RULE = "a participant code of 1-64 letters, digits, '-' or '_' (as the survey accepts)"


class ResponseError(ValueError):
    """A response file that cannot be used as it is."""


def as_responses(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` restricted to RESPONSE_COLUMNS, in order, with RESPONSE_DTYPES."""
    missing = [c for c in RESPONSE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"responses lack columns {missing}; the schema is {list(RESPONSE_COLUMNS)}")
    return df.loc[:, list(RESPONSE_COLUMNS)].astype(RESPONSE_DTYPES).reset_index(drop=True)


# --- error reporting -----------------------------------------------------------


def _fail(path: str | os.PathLike, problems: list[str]) -> None:
    """Raise one ResponseError listing ``problems`` (each already names file,
    row and column), if there are any."""
    if not problems:
        return
    shown = problems[:MAX_REPORTED]
    more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    head = f"{len(problems)} problem(s) in response file {path}:\n" if len(problems) > 1 else ""
    raise ResponseError(head + "\n".join(shown) + more)


def _problem(path: str | os.PathLike, where: str, column: str, what: str, expected: str) -> str:
    return f"{path}: {where}, column '{column}': {what}; expected {expected}"


def _short(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _empty(path: str | os.PathLike, columns: Iterable[str]) -> ResponseError:
    return ResponseError(
        f"{path}: line 1, column 1: empty file; expected a header row with columns "
        f"{', '.join(columns)} and one row per judgment"
    )


# --- parsing cells (all importers funnel through here) -------------------------


def _parse(
    path: str | os.PathLike, cells: pd.DataFrame, sources: list[str], optional: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Turn string cells (participant, set_id, trial_id, response, rt_ms;
    missing values as "") into typed raw responses, or raise naming every bad
    cell; ``optional`` id columns may be empty."""
    cells = cells.astype(str).apply(lambda s: s.str.strip())
    src = pd.Series(sources, index=cells.index)
    problems: list[str] = []
    for col in (c for c in ID_COLUMNS if c not in optional):
        for i in cells.index[cells[col] == ""]:
            problems.append(_problem(path, src[i], col, "missing value", "a non-empty string"))
    for col in ID_COLUMNS:
        for i in cells.index[cells[col].str.contains(r"[\x00-\x1f\x7f]", regex=True)]:
            problems.append(
                _problem(path, src[i], col, f"{_short(cells[col][i])} holds a control character", "printable text")
            )
    # the survey page's own rule; imported here so that survey may import what imports this module
    from .survey import PARTICIPANT_PATTERN

    code = cells["participant"]
    for i in cells.index[(code != "") & ~code.str.fullmatch(PARTICIPANT_PATTERN)]:
        problems.append(_problem(path, src[i], "participant", f"{_short(code[i])} is not allowed", PARTICIPANT_RULE))
    resp = cells["response"]
    for i in cells.index[resp == ""]:
        problems.append(
            _problem(path, src[i], "response", "missing value", "an integer option index (0 = first option)")
        )
    bad = (resp != "") & ~resp.str.fullmatch(r"[+-]?\d+")
    for i in cells.index[bad]:
        problems.append(
            _problem(
                path, src[i], "response", f"{resp[i]!r} is not an integer", "an integer option index (0 = first option)"
            )
        )
    value = resp.where(~bad & (resp != ""), "0").map(int)  # Python ints: no overflow
    for i in cells.index[(value > MAX_OPTION) | (value < 0)]:
        what = "is negative" if value[i] < 0 else "is too large"
        problems.append(
            _problem(
                path, src[i], "response", f"{_short(resp[i])} {what}", "an integer option index (0 = first option)"
            )
        )
    rt_text = cells["rt_ms"].where(~cells["rt_ms"].str.lower().isin(["", "null", "nan", "none"]), "")
    rt = pd.to_numeric(rt_text.replace("", np.nan), errors="coerce")
    rt_expected = f"a response time in ms from 0 to {MAX_RT_MS:.0f} (24 h), or empty"
    for i in cells.index[(rt_text != "") & rt.isna()]:
        problems.append(_problem(path, src[i], "rt_ms", f"{_short(rt_text[i])} is not a number", rt_expected))
    for i in cells.index[rt.notna() & ~rt.between(0, MAX_RT_MS)]:
        problems.append(_problem(path, src[i], "rt_ms", f"{_short(rt_text[i])} is out of range", rt_expected))
    _fail(path, problems)
    out = cells[list(ID_COLUMNS)].copy()
    out["response"] = value.astype("int64")
    out["rt_ms"] = rt.astype("float64")
    out["source"] = src
    return out.astype({"participant": "str", "set_id": "str", "trial_id": "str", "source": "str"})


def _read_text(path: str | os.PathLike, kind: str, expected: Iterable[str]) -> str:
    """The file's UTF-8 text; unreadable, non-UTF-8 or empty files are errors
    (a byte that is not UTF-8 is located by its row, line and column)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ResponseError(f"{path}: cannot be read ({e.strerror}); expected {kind}") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        where = f"line {line}, column {column}"
        if kind == "a CSV file":
            where = f"{_csv_row_of_line(data.decode('utf-8-sig', errors='replace'), line)}, column {column}"
        raise ResponseError(
            f"{path}: {where} (byte {e.start}): byte 0x{data[e.start]:02x} is not UTF-8 text; "
            f"expected {kind} in UTF-8 (re-save it as UTF-8)"
        ) from e
    if not text.strip():
        raise _empty(path, expected)
    return text


def _csv_row_of_line(text: str, line: int) -> str:
    """Which CSV record holds ``line``: "row N (line L)" (data rows counted
    from 1 after the header) or "line L (header)"; as _read_csv counts them."""
    reader = csv.reader(io.StringIO(text, newline=""))
    row, start = -1, 1
    try:
        for rec in reader:
            if rec and not (len(rec) == 1 and not rec[0].strip()):
                row += 1
                if start <= line <= reader.line_num:
                    return f"line {line} (header)" if row == 0 else f"row {row} (line {line})"
            start = reader.line_num + 1
    except csv.Error:
        pass
    return f"line {line}"


# --- CSV -----------------------------------------------------------------------


def _read_csv(path: str | os.PathLike, expected: Iterable[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, records and each record's location ("row N (line L)"),
    parsed strictly (bad quoting and ragged rows are errors)."""
    text = _read_text(path, "a CSV file", expected)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    records, sources = [], []
    line = 1
    try:
        for rec in reader:
            start, line = line, reader.line_num + 1
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if header is None:
                header = [h.strip() for h in rec]
                dup = sorted({h for h in header if header.count(h) > 1})
                if dup:
                    raise ResponseError(
                        _problem(
                            path, f"line {start} (header)", dup[0], "appears twice in the header", "unique column names"
                        )
                    )
                continue
            where = f"row {len(records) + 1} (line {start})"
            if len(rec) != len(header):
                col = header[len(rec)] if len(rec) < len(header) else f"#{len(rec)} (beyond the header)"
                raise ResponseError(
                    _problem(
                        path, where, col, f"the row has {len(rec)} fields", f"{len(header)} fields, as in the header"
                    )
                )
            records.append(rec)
            sources.append(where)
    except csv.Error as e:
        raise ResponseError(
            f"{path}: line {reader.line_num}: not valid CSV ({e}); expected comma-separated values with balanced quotes"
        ) from e
    assert header is not None
    if not records:
        raise ResponseError(
            f"{path}: row 1 (line 2), column '{header[0]}': no data rows after the "
            f"header; expected one row per judgment"
        )
    return header, records, sources


def _missing_columns(path: str | os.PathLike, header: list[str], required: Iterable[str]) -> None:
    _fail(
        path,
        [
            _problem(path, "line 1 (header)", c, "missing column", f"a header with columns {', '.join(required)}")
            for c in required
            if c not in header
        ],
    )


def read_generic_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV with exactly the columns participant, set_id, trial_id,
    response[, rt_ms]: one row per judgment. Returns RAW_COLUMNS."""
    header, records, sources = _read_csv(path, GENERIC_COLUMNS)
    _missing_columns(path, header, GENERIC_COLUMNS)
    allowed = GENERIC_COLUMNS + GENERIC_OPTIONAL
    _fail(
        path,
        [
            _problem(path, "line 1 (header)", c, "unexpected column", f"only the columns {', '.join(allowed)}")
            for c in header
            if c not in allowed
        ],
    )
    cells = pd.DataFrame(records, columns=header, dtype=object)
    if "rt_ms" not in cells:
        cells["rt_ms"] = ""
    return _parse(path, cells[list(GENERIC_COLUMNS) + ["rt_ms"]], sources)


def _jspsych_cells(path: str | os.PathLike, cells: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Keep the judgment rows (non-empty trial_id) of a jsPsych table and map
    jsPsych's ``rt`` to ``rt_ms``."""
    keep = cells["trial_id"].astype(str).str.strip() != ""
    if not keep.any():
        raise ResponseError(
            _problem(
                path,
                "every row",
                "trial_id",
                "no judgment trials (no row has a trial_id)",
                "the survey's judgment trials, each with trial_id, set_id, participant and response",
            )
        )
    cells = cells.loc[keep].copy()
    cells["rt_ms"] = cells["rt"] if "rt" in cells else ""
    if "set_id" not in cells:
        cells["set_id"] = ""
    return _parse(
        path, cells[list(GENERIC_COLUMNS) + ["rt_ms"]], [s for s, k in zip(sources, keep) if k], optional=("set_id",)
    )


def read_jspsych_csv(path: str | os.PathLike) -> pd.DataFrame:
    """jsPsych's CSV export; rows without a trial_id are not judgments and
    are ignored. Returns RAW_COLUMNS."""
    header, records, sources = _read_csv(path, JSPSYCH_COLUMNS)
    _missing_columns(path, header, JSPSYCH_COLUMNS)
    return _jspsych_cells(path, pd.DataFrame(records, columns=header, dtype=object), sources)


# --- JSON ----------------------------------------------------------------------


def _json_cell(value: Any) -> str | None:
    """A JSON scalar as cell text ("" for null); None for a wrong type."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        return None
    if isinstance(value, float):
        # inf/nan stay text, refused (or, nan as rt, read as unknown) like in a CSV
        return str(int(value)) if math.isfinite(value) and value.is_integer() else repr(value)
    return str(value)


_DUPLICATES = "\0duplicate keys"


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; keys given twice (json keeps the last silently) are
    listed under _DUPLICATES."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            obj.setdefault(_DUPLICATES, []).append(key)
        obj[key] = value
    return obj


def read_jspsych_json(path: str | os.PathLike) -> pd.DataFrame:
    """jsPsych's JSON export (an array of trial objects); objects without a
    trial_id are not judgments and are ignored. Returns RAW_COLUMNS."""
    text = _read_text(path, "a JSON file", JSPSYCH_COLUMNS)
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as e:
        raise ResponseError(
            f"{path}: line {e.lineno}, column {e.colno}: not valid JSON ({e.msg}); "
            "expected jsPsych's JSON data export (an array of trial objects)"
        ) from e
    if not isinstance(data, list):
        raise ResponseError(
            f"{path}: top level: a JSON {type(data).__name__}; expected an array of "
            "trial objects (jsPsych's JSON data export)"
        )
    problems: list[str] = []
    rows, sources = [], []
    fields = GENERIC_COLUMNS + ("rt",)
    for i, obj in enumerate(data):
        where = f"index {i}"
        if not isinstance(obj, dict):
            problems.append(_problem(path, where, "-", f"a JSON {type(obj).__name__}", "an object (one trial event)"))
            continue
        for key in obj.get(_DUPLICATES, ()):
            problems.append(_problem(path, where, key, "appears twice in one object", "each key once"))
        if obj.get("trial_id") in (None, ""):
            continue
        row = {}
        for key in fields:
            if key not in obj:
                if key in JSPSYCH_COLUMNS:
                    problems.append(
                        _problem(
                            path, where, key, "missing column", f"judgment trials with {', '.join(JSPSYCH_COLUMNS)}"
                        )
                    )
                row[key] = ""
                continue
            cell = _json_cell(obj[key])
            if cell is None:
                problems.append(
                    _problem(path, where, key, f"wrong type ({type(obj[key]).__name__})", "a string or a number")
                )
                cell = ""
            row[key] = cell
        rows.append(row)
        sources.append(where)
    _fail(path, problems)
    if not rows:
        raise ResponseError(
            _problem(
                path,
                "every index",
                "trial_id",
                "no judgment trials (no object has a trial_id)",
                "the survey's judgment trials",
            )
        )
    cells = pd.DataFrame(rows, columns=list(fields), dtype=object).rename(columns={"rt": "rt_ms"})
    return _parse(path, cells, sources, optional=("set_id",))


# --- dispatch and validation ---------------------------------------------------


def _reader(path: Path):
    """The importer for ``path``: by extension, else by content."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        try:
            head = path.read_text(encoding="utf-8-sig", errors="replace").lstrip()[:1]
        except OSError as e:
            raise ResponseError(f"{path}: cannot be read ({e.strerror})") from e
        suffix = ".json" if head in ("[", "{") else ".csv"
    if suffix == ".json":
        return read_jspsych_json
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
            header = next(csv.reader(f), [])
    except (OSError, csv.Error):
        header = []
    return read_jspsych_csv if any(h.strip() in JSPSYCH_MARKERS for h in header) else read_generic_csv


def check_response_file(path: str | os.PathLike) -> pd.DataFrame:
    """Read a real observers' response file on its own (no trials table):
    its format, columns and cells. Returns RAW_COLUMNS, or raises
    ResponseError naming the file, row and column."""
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no such file"
        raise ResponseError(f"{path}: {what}; expected a jsPsych CSV/JSON export or a generic CSV")
    return _reader(path)(path)


def _translate(path: Path, raw: pd.DataFrame, key: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Survey screens (ids in the key) as the trials table's trial, set and
    option index; other rows unchanged."""
    k = key.drop_duplicates("trial").set_index("trial")
    screen = raw["trial_id"].isin(k.index)
    raw = raw.copy()
    problems = []
    for i in np.flatnonzero(screen.to_numpy()):
        r = raw.iloc[i]
        row = k.loc[r.trial_id]
        if r.set_id not in ("", row.set_id):
            problems.append(
                _problem(
                    path,
                    r.source,
                    "set_id",
                    f"{r.set_id!r} is not the set of screen {r.trial_id!r}",
                    f"{row.set_id!r} or empty",
                )
            )
        order = [int(o) for o in str(row.shown_order).split("|")]
        if 0 <= r.response < len(order):  # else left as it is: reported as out of range below
            raw.iat[i, raw.columns.get_loc("response")] = order[r.response]
        raw.iat[i, raw.columns.get_loc("trial_id")] = row.trial_id
        raw.iat[i, raw.columns.get_loc("set_id")] = row.set_id
    return raw, problems


def load_responses(path: str | os.PathLike, trials: pd.DataFrame, key: pd.DataFrame | None = None) -> pd.DataFrame:
    """Import a real observers' response file, validate it against ``trials``
    and return it in the response schema (``observer="real"``). ``key``: the
    survey's key (iriflow.survey.read_key), needed for the survey's own
    files (module docstring)."""
    path = Path(path)
    raw = check_response_file(path)
    if not trials["trial_id"].is_unique:
        raise ValueError("the trials table has duplicate trial_id values")
    problems = []
    if key is not None:
        raw, problems = _translate(path, raw, key)
    t = trials.set_index("trial_id")
    known = raw["trial_id"].isin(t.index)
    examples = ", ".join(repr(x) for x in t.index[:2])
    hint = "" if key is not None else "; a survey screen id needs the survey's key (judgments.observers.real.key)"
    for _, r in raw.loc[~known].iterrows():
        problems.append(
            _problem(
                path,
                r.source,
                "trial_id",
                f"unknown trial id {r.trial_id!r}",
                f"an id from the trials table (e.g. {examples}) or the survey's key{hint}",
            )
        )
    k = raw.loc[known]
    set_id = t.loc[k["trial_id"], "set_id"].to_numpy()
    n_opt = t.loc[k["trial_id"], "n_options"].to_numpy()
    mismatch = (k["set_id"].to_numpy() != set_id) & (k["set_id"].to_numpy() != "")  # "": not recorded
    for (_, r), s in zip(k.loc[mismatch].iterrows(), set_id[mismatch]):
        problems.append(
            _problem(path, r.source, "set_id", f"{r.set_id!r} is not the set of trial {r.trial_id!r}", f"{s!r}")
        )
    out_of_range = (k["response"].to_numpy() < 0) | (k["response"].to_numpy() >= n_opt)
    for (_, r), n in zip(k.loc[out_of_range].iterrows(), n_opt[out_of_range]):
        problems.append(
            _problem(
                path,
                r.source,
                "response",
                f"{r.response} is out of range",
                f"an integer option index in 0..{n - 1} (the trial has {n} options)",
            )
        )
    dup = raw.duplicated(["participant", "trial_id"], keep=False)
    first = raw.loc[dup].groupby(["participant", "trial_id"], sort=False)["source"].first()
    for _, r in raw.loc[raw.duplicated(["participant", "trial_id"], keep="first")].iterrows():
        problems.append(
            _problem(
                path,
                r.source,
                "trial_id",
                f"participant {r.participant!r} answered "
                f"trial {r.trial_id!r} again (first at {first[(r.participant, r.trial_id)]})",
                "one answer per participant and trial",
            )
        )
    _fail(path, problems)
    out = raw.drop(columns="source")
    out["correct"] = out["response"].to_numpy() == t.loc[out["trial_id"], "correct"].to_numpy()
    out["observer"] = "real"
    return as_responses(out)


def load_response_files(
    paths: Iterable[str | os.PathLike], trials: pd.DataFrame, key: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``load_responses`` of each file, concatenated (the response schema,
    empty without files). A participant who answered the same trial in two
    files is an error naming both; so is a file listed twice."""
    parts, seen = [], {}
    for path in paths:
        real = os.path.realpath(path)
        if real in seen:
            raise ResponseError(f"{path}: listed twice (also as {seen[real]}); expected each file once")
        seen[real] = path
        r = load_responses(path, trials, key)
        r["_file"] = str(path)
        parts.append(r)
    if not parts:
        return as_responses(pd.DataFrame({c: pd.Series(dtype=t) for c, t in RESPONSE_DTYPES.items()}))
    out = pd.concat(parts, ignore_index=True)
    dup = out.duplicated(["participant", "trial_id"], keep=False)
    if dup.any():
        files = out.loc[dup].groupby(["participant", "trial_id"], sort=False)["_file"].unique()
        clashes = files[files.map(len) > 1]
        (participant, trial_id), names = next(iter(clashes.items()))
        raise ResponseError(
            f"{names[1]}: participant {participant!r} answered trial {trial_id!r} in "
            f"{names[0]} too ({len(clashes)} such answers in all); expected each "
            "participant's answers in one file (or distinct participant codes)"
        )
    return as_responses(out)
