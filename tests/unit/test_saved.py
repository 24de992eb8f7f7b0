"""Saved sessions read back and compared (measurement/saved.py, ``python -m pytest_pktgen
compare``), on two real sessions of the VM lab (tests/data/captured/results-veth-paced-*.json,
``make capture``): the same veth sweep counted and timed by pgrx, 5 rounds each, paced at
20,000 pps, the second's 1500 B point at 18,000 pps. Known answers: 64 B unchanged, 1500 B at
exactly 0.9 of the pps, and its latency up by the longer pacing wait (pktgen stamps a frame,
then waits for its send time: one gap of 55.6 us against 50 us)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from pytest_pktgen.measurement import saved
from pytest_pktgen.measurement.compare import DEFAULT_THRESHOLDS

CAPTURED = Path(__file__).parent.parent / "data" / "captured"
BEFORE, AFTER = (CAPTURED / f"results-veth-paced-{n}.json" for n in ("before", "after"))
KEY = "test_sessions.py::test_veth[{}B]"
# a real session of the instruction clock (--pktgen-vm-clock instructions): pktgen on a dummy,
# 64 B, 5 rounds of 100,000 frames (bench/regression_case.py on the stock kernel)
INSTRUCTIONS = CAPTURED / "results-dummy-instructions.json"


def test_real_sessions_are_of_the_shipped_schema():
    schema = json.loads(saved.SCHEMA.read_text())
    for path in (BEFORE, AFTER):
        jsonschema.validate(json.loads(path.read_text()), schema)
    broken = json.loads(AFTER.read_text())
    del broken["results"][0]["per_round"]
    with pytest.raises(jsonschema.ValidationError, match="'per_round' is a required property"):
        jsonschema.validate(broken, schema)


def test_two_real_sessions_compare_to_their_known_answers():
    found, only = saved.compare_sessions(saved.load(str(BEFORE)), saved.load(str(AFTER)),
                                         DEFAULT_THRESHOLDS, 0.95)
    assert only == []
    by = {(c.key, c.metric.name): c for c in found}
    assert len(by) == len(found) == 8  # 2 points x pps, loss, p50, p99
    same, slower = by[(KEY.format(64), "pps")], by[(KEY.format(1500), "pps")]
    assert same.verdict == "no change" and 0.999 <= same.low <= 1.0 <= same.high <= 1.001
    assert slower.verdict == "regression" and slower.low <= 0.9 <= slower.high
    assert slower.high < 0.901 and (len(slower.before), len(slower.after)) == (5, 5)
    for frame in (64, 1500):  # nothing lost on either side: exactly no change
        loss = by[(KEY.format(frame), "loss_ratio")]
        assert (loss.verdict, loss.low, loss.high) == ("no change", 0.0, 0.0)
    wait = by[(KEY.format(1500), "lat_p50_us")]  # 5.6 us more pacing wait, on ~36 us
    assert wait.verdict == "regression" and 1.10 <= wait.estimate <= 1.25
    p99 = by[(KEY.format(64), "lat_p99_us")]  # a p99 of 5 rounds does not settle 25 %
    assert p99.verdict == "undecided" and p99.rounds_needed > 5


def test_a_session_against_itself_regresses_nowhere():
    session = saved.load(str(BEFORE))
    found, _ = saved.compare_sessions(session, session, DEFAULT_THRESHOLDS, 0.95)
    assert found and all(c.verdict in ("no change", "undecided") for c in found)
    assert all(c.low <= 1.0 <= c.high or c.metric.absolute for c in found)


def _compare(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pytest_pktgen", "compare", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_compare_command_prints_the_table_draws_the_forest_and_exits_by_verdict(tmp_path):
    done = _compare(BEFORE, AFTER, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # a regression
    lines = done.stdout.splitlines()
    assert lines[0] == f"{AFTER} against {BEFORE}:"
    assert lines[1].split() == ["point", "metric", "after/before", "interval", "threshold",
                                "rounds", "b+a", "verdict"]
    row = next(line for line in lines if "[1500B]" in line and " pps " in line).split()
    assert row[1:4] == ["pps", "0.900", "0.900..0.900"] and row[-1] == "regression"
    assert lines[-2].startswith("8 comparisons: 2 regression, 3 undecided, 3 no change")
    assert lines[-1] == f"forest plot: {tmp_path / 'compare.png'}"
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    # thresholds wide enough for every point: nothing regresses; the p99s stay undecided
    wide = _compare(BEFORE, AFTER, "--threshold", "pps=20%,lat_p50_us=50%", "--plot", "",
                    cwd=tmp_path)
    table = wide.stdout.splitlines()[2:-1]
    assert wide.returncode == 2 and not [line for line in table if line.endswith("regression")]
    assert "forest plot" not in wide.stdout
    itself = _compare(BEFORE, BEFORE, "--threshold", "lat_p50_us=50%,lat_p99_us=90%",
                      "--plot", "", cwd=tmp_path)
    assert itself.returncode == 0, itself.stdout  # everything settled, nothing changed


@pytest.mark.parametrize(("args", "message"), [
    (["nowhere.json", AFTER], "nowhere.json: no such file"),
    ([BEFORE, AFTER, "--threshold", "speed=5%"], "threshold speed=5%: METRIC=SHARE"),
    ([BEFORE, AFTER, "--confidence", "2"], "'2' is not a confidence"),
])
def test_bad_input_is_exit_4_with_a_reason(tmp_path, args, message):
    done = _compare(*args, cwd=tmp_path)
    assert done.returncode == 4 and message in done.stderr


def test_the_instruction_clock_s_rounds_are_alike_and_never_compared_with_the_host_s(tmp_path):
    schema = json.loads(saved.SCHEMA.read_text())
    jsonschema.validate(json.loads(INSTRUCTIONS.read_text()), schema)
    counted = saved.load(str(INSTRUCTIONS))
    assert saved.clock_of(counted) == "instructions" and saved.clock_of(saved.load(str(BEFORE))
                                                                        ) == "host"
    (row,) = counted.rows.values()
    pps = saved.rounds_of(row, "pps")
    assert len(pps) == 5 and max(pps) / min(pps) < 1.01  # a cost in instructions: alike
    found, _ = saved.compare_sessions(counted, counted, DEFAULT_THRESHOLDS, 0.95)
    assert [c.verdict for c in found if c.metric.name == "pps"] == ["no change"]
    done = _compare(BEFORE, INSTRUCTIONS, cwd=tmp_path)
    assert done.returncode == 4
    assert (f"no comparison: {BEFORE} was measured by the host clock, {INSTRUCTIONS} by the "
            "instructions clock (--pktgen-vm-clock)") in done.stdout
    mixed = saved.pooled([saved.load(str(BEFORE)), counted], "mixed.json")
    with pytest.raises(saved.SavedError, match="a pool of sessions of different clocks"):
        saved.clock_of(mixed)


def test_old_and_foreign_files_are_refused_with_what_to_do(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"version": 1, "results": {}}))
    with pytest.raises(saved.SavedError, match="version 1, this pytest-pktgen reads version 2"):
        saved.load(str(old))
    other = tmp_path / "bench.json"
    other.write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(saved.SavedError, match="not a pytest-pktgen results.json or baseline"):
        saved.load(str(other))
    done = _compare(old, AFTER, cwd=tmp_path)
    assert done.returncode == 4 and "medians only" in done.stderr


def test_points_in_one_session_only_are_said(tmp_path):
    doc = json.loads(AFTER.read_text())
    doc["results"] = doc["results"][:1]
    part = tmp_path / "part.json"
    part.write_text(json.dumps(doc))
    found, only = saved.compare_sessions(saved.load(str(BEFORE)), saved.load(str(part)),
                                         DEFAULT_THRESHOLDS, 0.95)
    assert {c.key for c in found} == {KEY.format(64)}
    assert only == [f"only in {BEFORE}: {KEY.format(1500)}"]


def test_a_metric_some_rounds_lack_is_said_not_compared(tmp_path):
    doc = json.loads(AFTER.read_text())
    row = next(r for r in doc["results"] if r["frame"] == 1500)
    row["per_round"][2]["lat_p99_us"] = None  # a round whose latency samples were all lost
    part = tmp_path / "part.json"
    part.write_text(json.dumps(doc))
    found, only = saved.compare_sessions(saved.load(str(BEFORE)), saved.load(str(part)),
                                         DEFAULT_THRESHOLDS, 0.95)
    assert not [c for c in found if c.key == KEY.format(1500) and c.metric.name == "lat_p99_us"]
    assert [c for c in found if c.key == KEY.format(1500) and c.metric.name == "lat_p50_us"]
    assert only == [f"{KEY.format(1500)}: lat_p99_us in 4 of 5 rounds of {part}: not compared "
                    "(a round without it, e.g. no latency sample came back)"]
