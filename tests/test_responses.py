import csv
import json

import numpy as np
import pandas as pd
import pytest

from iriflow.judgments import build_trials
from iriflow.responses import (
    RESPONSE_COLUMNS,
    RESPONSE_DTYPES,
    ResponseError,
    load_response_files,
    load_responses,
    read_generic_csv,
    read_jspsych_csv,
    read_jspsych_json,
)

GENERIC = ["participant", "set_id", "trial_id", "response"]


@pytest.fixture
def trials():
    # 6 seed-alternative 2AFC trials (first), 2 matching groups of 3, 2 catch trials
    return build_trials(
        6, np.arange(6) % 3, np.ones(6, bool), alternatives=("seed",), matching_k=3, n_catch=2, set_id="S"
    )


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def answers(trials, participant="p1", n=None):
    """Correct answers of one participant to the first n trials."""
    t = trials.head(n) if n else trials
    return [[participant, s, i, c] for s, i, c in zip(t.set_id, t.trial_id, t.correct)]


def check_schema(df):
    assert list(df.columns) == list(RESPONSE_COLUMNS)
    assert df.dtypes.astype(str).to_dict() == RESPONSE_DTYPES


def test_generic_csv_roundtrip(tmp_path, trials):
    wrong = [[p, s, i, (c + 1) % n] for (p, s, i, c), n in zip(answers(trials, "p2"), trials.n_options)]
    rows = answers(trials) + wrong
    path = write_csv(tmp_path / "r.csv", GENERIC + ["rt_ms"], [r + [812.5] for r in rows])
    df = load_responses(path, trials)
    check_schema(df)
    assert len(df) == 2 * len(trials) and (df["observer"] == "real").all()
    assert df.groupby("participant")["correct"].mean().to_dict() == {"p1": 1.0, "p2": 0.0}
    assert (df["rt_ms"] == 812.5).all()
    raw = read_generic_csv(path)
    assert list(raw["source"][:2]) == ["row 1 (line 2)", "row 2 (line 3)"]


def jspsych_rows(trials):
    """A jsPsych-like event log: consent, instructions, judgments, debrief."""
    base = {"trial_type": "html-button-response", "internal_node_id": "0.0-1.0", "time_elapsed": 1000}
    events = [
        {
            **base,
            "trial_type": "html-keyboard-response",
            "trial_index": 0,
            "rt": 2300,
            "stimulus": '<p>Consent,\n"press" a key</p>',
            "response": "y",
        },
        {**base, "trial_type": "instructions", "trial_index": 1, "rt": 5000, "response": None},
    ]
    for k, (i, s, c) in enumerate(zip(trials.trial_id, trials.set_id, trials.correct)):
        events.append(
            {
                **base,
                "trial_index": k + 2,
                "rt": 700 + k,
                "stimulus": "<img src='x.png'>",
                "response": int(c),
                "participant": "anon-7",
                "trial_id": i,
                "set_id": s,
            }
        )
    events.append({**base, "trial_type": "survey-text", "trial_index": 99, "rt": 900, "response": {"Q0": "fine"}})
    return events


def test_jspsych_csv_and_json_with_non_trial_rows(tmp_path, trials):
    events = jspsych_rows(trials)
    header = [
        "rt",
        "stimulus",
        "response",
        "trial_type",
        "trial_index",
        "time_elapsed",
        "internal_node_id",
        "participant",
        "trial_id",
        "set_id",
    ]
    cell = lambda v: "" if v is None else json.dumps(v) if isinstance(v, dict) else v  # noqa: E731
    csv_path = write_csv(tmp_path / "jspsych.csv", header, [[cell(e.get(h)) for h in header] for e in events])
    json_path = tmp_path / "jspsych.json"
    json_path.write_text(json.dumps(events))
    for path in (csv_path, json_path):
        df = load_responses(path, trials)
        check_schema(df)
        assert len(df) == len(trials) and df["correct"].all()
        assert list(df["trial_id"]) == list(trials["trial_id"])
        assert list(df["rt_ms"]) == [700.0 + k for k in range(len(trials))]
        assert set(df["participant"]) == {"anon-7"}
    # the multi-line quoted stimulus shifts line numbers but not data rows
    assert read_jspsych_csv(csv_path)["source"].iloc[0] == "row 3 (line 5)"
    assert read_jspsych_json(json_path)["source"].iloc[0] == "index 2"


def test_content_sniffing_for_unknown_extensions(tmp_path, trials):
    path = tmp_path / "export.txt"
    path.write_text(json.dumps(jspsych_rows(trials)))
    assert len(load_responses(path, trials)) == len(trials)


def malformed_cases(trials):
    """(file name, content, substrings the error must contain)."""
    ok = answers(trials, n=3)
    t0, t1 = trials.trial_id.iloc[0], trials.trial_id.iloc[1]
    text = lambda header, rows: "\n".join(",".join(map(str, r)) for r in [header] + rows) + "\n"  # noqa: E731
    return [
        (
            "missing_column.csv",
            text(GENERIC[:3], [r[:3] for r in ok]),
            ["line 1 (header)", "column 'response'", "missing column"],
        ),
        (
            "unknown_trial.csv",
            text(GENERIC, [ok[0], ["p1", "S", "S/2afc-seed/99", 0]]),
            ["row 2 (line 3)", "column 'trial_id'", "unknown trial id 'S/2afc-seed/99'"],
        ),
        (
            "out_of_range.csv",
            text(GENERIC, [["p1", "S", t0, 2]]),
            ["row 1 (line 2)", "column 'response'", "2 is out of range", "0..1"],
        ),
        (
            "not_integer.csv",
            text(GENERIC, ok[:2] + [["p1", "S", trials.trial_id.iloc[2], "left"]]),
            ["row 3 (line 4)", "column 'response'", "'left' is not an integer"],
        ),
        (
            "duplicate.csv",
            text(GENERIC, [ok[0], ok[1], ["p1", "S", t0, 1]]),
            ["row 3 (line 4)", "column 'trial_id'", f"answered trial '{t0}' again", "row 1 (line 2)"],
        ),
        ("empty.csv", "", ["line 1, column 1", "empty file", "participant, set_id, trial_id, response"]),
        ("header_only.csv", text(GENERIC, []), ["row 1 (line 2)", "column 'participant'", "no data rows"]),
        ("ragged.csv", text(GENERIC, [ok[0], ok[1] + ["extra"]]), ["row 2 (line 3)", "column '#5", "5 fields"]),
        ("wrong_set.csv", text(GENERIC, [["p1", "T", t0, 0]]), ["row 1 (line 2)", "column 'set_id'", "'S'"]),
        (
            "bad_rt.csv",
            text(GENERIC + ["rt_ms"], [ok[0] + ["fast"]]),
            ["row 1 (line 2)", "column 'rt_ms'", "'fast' is not a number"],
        ),
        (
            "no_participant.csv",
            text(GENERIC, [["", "S", t0, 0]]),
            ["row 1 (line 2)", "column 'participant'", "missing value"],
        ),
        (
            "extra_column.csv",
            text(GENERIC + ["mood"], [ok[0] + ["ok"]]),
            ["line 1 (header)", "column 'mood'", "unexpected column"],
        ),
        ("broken.json", f'[{{"trial_id": "{t0}",\n  "response": }}]', ["line 2, column 15", "not valid JSON"]),
        ("empty.json", "  \n", ["line 1, column 1", "empty file"]),
        (
            "wrong_type.json",
            json.dumps(
                [{"trial_type": "instructions"}, {"participant": ["x"], "set_id": "S", "trial_id": t0, "response": 0}]
            ),
            ["index 1", "column 'participant'", "wrong type (list)"],
        ),
        (
            "missing_key.json",
            json.dumps(
                [
                    {"trial_type": "instructions"},
                    {"trial_type": "x"},
                    {"participant": "a", "set_id": "S", "trial_id": t1},
                ]
            ),
            ["index 2", "column 'response'", "missing column"],
        ),
        ("not_array.json", json.dumps({"participant": "a"}), ["top level", "expected an array"]),
        ("no_judgments.json", json.dumps([{"trial_type": "instructions"}]), ["column 'trial_id'", "no judgment"]),
    ]


@pytest.mark.parametrize("case", range(18))
def test_malformed_files_are_rejected_with_file_row_and_column(tmp_path, trials, case):
    cases = malformed_cases(trials)
    assert len(cases) == 18
    name, content, expected = cases[case]
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ResponseError) as err:
        load_responses(path, trials)
    msg = str(err.value)
    assert str(path) in msg
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_all_problems_of_a_file_are_reported_together(tmp_path, trials):
    ok = answers(trials, n=2)
    path = write_csv(
        tmp_path / "many.csv", GENERIC, [ok[0], ["p1", "S", "nope", 0], ["p1", "S", trials.trial_id.iloc[1], 5]]
    )
    with pytest.raises(ResponseError, match="2 problem") as err:
        load_responses(path, trials)
    assert "row 2 (line 3), column 'trial_id'" in str(err.value)
    assert "row 3 (line 4), column 'response'" in str(err.value)


def test_missing_file_is_a_response_error(tmp_path, trials):
    with pytest.raises(ResponseError, match="no such file"):
        load_responses(tmp_path / "absent.csv", trials)


def test_several_files(tmp_path, trials):
    a = write_csv(tmp_path / "a.csv", GENERIC, answers(trials, "p1"))
    b = write_csv(tmp_path / "b.csv", GENERIC, answers(trials, "p2", n=3))
    df = load_response_files([a, b], trials)
    check_schema(df)
    assert df.groupby("participant").size().to_dict() == {"p1": len(trials), "p2": 3}
    empty = load_response_files([], trials)
    check_schema(empty)
    assert empty.empty
    # the same participant and trial in two files: an error naming both
    c = write_csv(tmp_path / "c.csv", GENERIC, answers(trials, "p2", n=2))
    with pytest.raises(
        ResponseError,
        match=r"c\.csv: participant 'p2' answered trial .* in .*b\.csv too "
        r"\(2 such answers",
    ):
        load_response_files([a, b, c], trials)
    with pytest.raises(ResponseError, match="listed twice"):
        load_response_files([a, tmp_path / "." / "a.csv"], trials)
    # a bad file is reported as load_responses reports it
    bad = write_csv(tmp_path / "bad.csv", GENERIC, [["p3", "S", "nope", 0]])
    with pytest.raises(ResponseError, match=r"bad\.csv: row 1 \(line 2\), column 'trial_id'"):
        load_response_files([a, bad], trials)


def test_survey_screens_are_read_through_the_key(trials, tmp_path):
    """The survey's own file names screens by opaque ids and records the
    option clicked in the order shown; the key turns both into the trials
    table's trial and option index."""
    rows = trials.loc[trials["n_options"] == 2].head(4)
    key = pd.DataFrame(
        {
            "trial": [f"{i:020x}" for i in range(len(rows))],
            "set_id": rows["set_id"].to_numpy(),
            "trial_id": rows["trial_id"].to_numpy(),
            "shown_order": ["1|0", "0|1", "1|0", "0|1"],
        }
    )
    clicked = [0, 0, 1, 1]
    path = tmp_path / "survey.csv"
    write_csv(
        path,
        ["trial_type", "trial_index", "participant", "list", "trial_id", "response", "rt"],
        [["html-button-response", i, "p1", "L", t, c, 800] for i, (t, c) in enumerate(zip(key["trial"], clicked))],
    )
    got = load_responses(path, trials, key)
    assert got["trial_id"].tolist() == rows["trial_id"].tolist()
    assert got["set_id"].tolist() == rows["set_id"].tolist()
    assert got["response"].tolist() == [1, 0, 0, 1]  # the table's option index of what was clicked
    assert got["correct"].tolist() == (np.array([1, 0, 0, 1]) == rows["correct"].to_numpy()).tolist()
    with pytest.raises(
        ResponseError, match=r"row 1 \(line 2\), column 'trial_id': unknown trial id .*needs the survey's key"
    ):
        load_responses(path, trials)
    write_csv(
        path,
        ["trial_type", "trial_index", "participant", "trial_id", "response"],
        [["html-button-response", 0, "p1", key["trial"].iloc[0], 2]],
    )
    with pytest.raises(ResponseError, match=r"column 'response': 2 is out of range"):
        load_responses(path, trials, key)


def test_the_analysis_reads_survey_files_through_the_key(tmp_path):
    """load_answers (model scores, statistics) imports the survey's own
    files through the key file, as score_alignment does."""
    from iriflow.analysis import load_answers
    from iriflow.survey import KEY_COLUMNS

    set_id = "mnist5k/resnet18-ce-adv_l2-s0/penultimate/regfree/other-image"
    trials = build_trials(6, np.arange(6) % 3, np.ones(6, bool), alternatives=("seed",), n_catch=0, set_id=set_id)
    rows = trials.loc[trials["n_options"] == 2].head(4)
    trials.to_csv(tmp_path / "trials.csv", index=False)
    key = pd.DataFrame({c: "x" for c in KEY_COLUMNS}, index=range(len(rows)))
    key["trial"] = [f"{i:020x}" for i in range(len(rows))]
    key["set_id"], key["trial_id"] = rows["set_id"].to_numpy(), rows["trial_id"].to_numpy()
    key["shown_order"] = ["1|0", "0|1", "1|0", "0|1"]
    key.to_csv(tmp_path / "key.csv", index=False)
    write_csv(
        tmp_path / "survey.csv",
        ["trial_type", "trial_index", "participant", "list", "trial_id", "response", "rt"],
        [["html-button-response", i, "p1", "L", t, c, 800] for i, (t, c) in enumerate(zip(key["trial"], [0, 0, 1, 1]))],
    )
    kw = dict(real_paths=[tmp_path / "survey.csv"])
    got = load_answers([tmp_path / "trials.csv"], [], {}, key_path=tmp_path / "key.csv", **kw)
    assert got["trial_id"].tolist() == rows["trial_id"].tolist()
    assert got["correct"].astype(bool).tolist() == (np.array([1, 0, 0, 1]) == rows["correct"].to_numpy()).tolist()
    with pytest.raises(ResponseError, match="needs the survey's key"):
        load_answers([tmp_path / "trials.csv"], [], {}, **kw)
