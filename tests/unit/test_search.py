"""The search's trial arithmetic (the search itself runs on real pktgen: tests/integration)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pytest_pktgen.errors import PktgenConfigError
from pytest_pktgen.measurement.report import Results, search_tables
from pytest_pktgen.measurement.search import (
    Goal,
    GoalResult,
    SearchResult,
    Trial,
    line_rate_pps,
    threads_for,
)


def trial(**kw) -> Trial:
    base = dict(intended_load=10_000.0, intended_duration=1.0, intended_count=10_000,
                sent=10_000, errors=0, received=10_000, duration=1.0, wall_s=2.0, threads=1)
    return Trial(**{**base, **kw})


def test_each_thread_keeps_a_delay_of_200_ns_or_more():
    assert threads_for(10_000, 2) == 1
    assert threads_for(5_000_000, 4) == 1  # 200 ns exactly
    assert threads_for(5_000_001, 4) == 2
    assert threads_for(14_880_952, 4) == 3
    assert threads_for(14_880_952, 2) == 2  # fewer than needed: it falls short, and says so


def test_loss_unsent_and_refused_frames_all_count_against_a_trial():
    assert trial().loss_ratio == 0.0
    assert trial(received=9_950).loss_ratio == pytest.approx(0.005)
    late = trial(sent=9_000, received=9_000)  # cut at its time: 1,000 never sent
    assert late.unsent == 1_000 and late.loss_ratio == pytest.approx(0.1)
    refused = trial(sent=9_900, errors=100, received=9_900)  # the driver refused 100
    assert refused.offered == 10_000 and refused.loss_ratio == pytest.approx(0.01)


def test_line_rate_counts_the_wire_overhead():
    assert line_rate_pps(10_000, 64) == pytest.approx(14_880_952, rel=1e-6)
    assert line_rate_pps(1_000, 1518) == pytest.approx(81_274, rel=1e-4)


def test_a_goal_mlrsearch_refuses_is_a_config_error():
    with pytest.raises(PktgenConfigError, match="goal"):
        Goal(loss_ratio=1.5).mlr()
    assert Goal(0.005).mlr().loss_ratio == 0.005


def test_ndr_and_pdr_are_the_zero_and_smallest_partial_goals():
    goals = [GoalResult(Goal(0.0), 9_900.0, 10_000.0, 9_900.0),
             GoalResult(Goal(0.01), 10_200.0, 10_300.0, 10_150.0),
             GoalResult(Goal(0.005), 10_050.0, 10_100.0, 10_020.0)]
    found = SearchResult(64, goals, [], 40_000.0, "given", 1.0)
    assert (found.ndr_pps, found.pdr_pps) == (9_900.0, 10_020.0)
    assert found.goal(0.01).upper_pps == 10_300.0 and not found.goal(0.01).irregular
    assert found.l1_mbps(found.ndr_pps) == pytest.approx(9_900 * 84 * 8 / 1e6)
    assert found.mbps(None) is None


def _found(name="test_rfc2544", frame=64, label=None) -> SearchResult:
    trials = [trial(intended_load=40_000.0, intended_count=40_000, sent=40_000, received=10_005),
              trial(intended_load=10_000.0, received=10_000),
              trial(intended_load=10_100.0, intended_count=10_100, sent=10_100,
                    received=10_050)]
    goals = [GoalResult(Goal(0.0), 10_000.0, 10_100.0, 10_000.0),
             GoalResult(Goal(0.005), 10_100.0, None, 10_050.0)]
    return SearchResult(frame, goals, trials, 40_000.0, "given", 12.0, 1_000.0,
                        test=f"t.py::{name}", name=name, label=label, rx_backend="ifstats",
                        sink="tc-drop", device={"name": "pgv", "driver": "veth"})


def test_searches_have_a_table_a_csv_json_in_mlrsearchs_form_and_a_plot(tmp_path):
    results = Results(environment={"kernel": "6.1"}, searches=[_found(), _found(frame=1500)])
    paths = results.write(str(tmp_path))
    assert "csv" not in paths  # no measurements: no results.csv
    csv = pd.read_csv(paths["searches csv"], comment="#")
    assert list(csv["frame"]) == [64, 1500] and list(csv["ndr_pps"]) == [10_000.0, 10_000.0]
    assert csv.loc[1, "ndr_l1_mbps"] == pytest.approx(10_000 * 1520 * 8 / 1e6)
    assert list(csv["irregular"]) == [True, True] and list(csv["trial_count"]) == [3, 3]
    doc = json.loads(paths["json"].read_text())
    (first, _second) = doc["searches"]
    assert first["goals"][1] == {
        "search_goal": {"loss_ratio": 0.005, "exceed_ratio": 0.5, "relative_width": 0.005,
                        "initial_trial_duration": 1.0, "final_trial_duration": 1.0,
                        "duration_sum": 1.0},
        "relevant_lower_bound": 10_100.0, "relevant_upper_bound": None,
        "conditional_throughput": 10_050.0, "irregular": True}
    assert first["trials"][0]["loss_ratio"] == pytest.approx(1 - 10_005 / 40_000)
    pngs = sorted(p.name for k, p in paths.items() if k.startswith("search png"))
    assert pngs == ["search-1-test_rfc2544-64B.png", "search-2-test_rfc2544-1500B.png"]
    assert (tmp_path / pngs[0]).read_bytes()[:4] == b"\x89PNG"
    bare = results.write(str(tmp_path / "bare"), plots=False)  # --pktgen-no-plots
    assert sorted(bare) == ["json", "searches csv"] and not list((tmp_path / "bare").glob("*.png"))
    ((title, lines),) = search_tables(results.searches)
    assert title == ("test_rfc2544: 2 throughput search(es), received counted by ifstats, "
                     "sink tc-drop")
    assert lines[0].split() == ["frame", "pkt_size", "NDR", "pps", "NDR", "L1", "Mb/s", "PDR",
                                "0.5%", "pps", "PDR", "0.5%", "L1", "Mb/s", "irregular",
                                "trials", "time", "s"]
    assert lines[1].split()[:4] == ["64", "60", "10,000", "6.7"]


def test_a_search_below_its_gate_fails_saying_what_and_who():
    from pytest_pktgen.measurement import gates

    reqs = gates.option_requirements(None, None, min_ndr=20_000) + [
        gates.Requirement("pps", "min", 1e9, "--pktgen-min-pps")]
    assert gates.check(_found(), gates.of_kind(reqs, search=True)) == [
        "ndr_pps 10,000 measured, at least 20,000 required by --pktgen-min-ndr"]
    assert gates.of_kind(reqs, search=False)[0].metric == "pps"
