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
    # a count-based run sends its count, refusals on top: counted once, as loss
    over = trial(sent=10_000, errors=30, received=10_000)
    assert over.offered == 10_030 and over.unsent == 0
    assert over.loss_ratio == pytest.approx(30 / 10_030)  # not (30 + 30) / 10_030


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


def test_a_searchs_latency_across_hosts_carries_their_clocks_offset(tmp_path):
    """The NDR's latency stamped on one machine, read on another: the offset and its
    uncertainty in the search's columns and a line under its table; none for one machine."""
    from dataclasses import replace

    from pytest_pktgen.host.clock import ClockOffset
    from pytest_pktgen.lab.latency import Latency

    lat = Latency(100, 90, 400, 15_000, 0, {90: 50, 200: 49, 400: 1})
    across = replace(_found(), latency=lat, latency_load=10_000.0,
                     latency_clock=ClockOffset(2_500, 1_250))
    here = replace(_found(frame=1500), latency=lat, latency_load=10_000.0)
    assert (across.as_dict()["lat_clock_offset_us"], across.as_dict()["lat_clock_uncertainty_us"]) \
        == (2.5, 1.25)
    assert "lat_clock_offset_us" not in here.as_dict()
    paths = Results(searches=[across, here]).write(str(tmp_path), plots=False)
    csv = pd.read_csv(paths["searches csv"], comment="#")
    assert csv.loc[0, "lat_clock_offset_us"] == 2.5 and pd.isna(csv.loc[1, "lat_clock_offset_us"])
    ((_, lines),) = search_tables([across, here])
    assert ("  64B NDR latency across hosts: the sink's clock minus the generator's +2 us "
            "+- 1 us, in every sample") in lines
    assert sum("latency across hosts" in line for line in lines) == 1


def test_a_search_below_its_gate_fails_saying_what_and_who():
    from pytest_pktgen.measurement import gates

    reqs = gates.option_requirements(None, None, min_ndr=20_000) + [
        gates.Requirement("pps", "min", 1e9, "--pktgen-min-pps")]
    assert gates.check(_found(), gates.of_kind(reqs, search=True)) == [
        "ndr_pps 10,000 measured, at least 20,000 required by --pktgen-min-ndr"]
    assert gates.of_kind(reqs, search=False)[0].metric == "pps"


def test_a_search_gate_as_a_share_of_the_line_rate_needs_a_known_speed():
    from pytest_pktgen.measurement import gates

    (share,) = gates.option_requirements(None, None, min_ndr="95%")
    assert share.of_line_rate and share.value == pytest.approx(0.95)
    virtual = _found()  # a veth: no speed, no line rate
    assert gates.check(virtual, [share]) == [
        "--pktgen-min-ndr requires ndr_pps of at least 95.0% of the line rate, but pgv has no "
        "known speed (a virtual link?): give it in pps"]
    wired = _found()
    wired.line_rate_pps = line_rate_pps(10, 64)  # 10 Mb/s: 14,881 pps of 64 B frames
    assert gates.check(wired, [share]) == [
        "ndr_pps 10,000 measured, at least 95.0% of the line rate 14,881 pps = 14,137 required "
        "by --pktgen-min-ndr"]
    assert gates.check(wired, gates.option_requirements(None, None, min_ndr="67%")) == []
    assert wired.as_dict()["ndr_line_rate"] == pytest.approx(10_000 / 14_880.95, rel=1e-6)
    for bad in ("0%", "101%", "ninety%", "fast", -5):
        with pytest.raises(ValueError, match="min_ndr"):
            gates.requirement("min_ndr", bad, "x")
    with pytest.raises(ValueError, match="is not a number"):
        gates.requirement("min_pps", "95%", "x")  # a share only where a line rate is known


def test_search_baselines_keep_their_own_section_and_compare_by_bounds(tmp_path):
    from pytest_pktgen.measurement import gates
    from pytest_pktgen.measurement.row import Row

    row = Row("t.py::test_rfc2544[64B]", pps=1000.0, mbps=10.0, offered=1000, received=1000,
              per_round=[{"pps": 1000.0}] * 2)
    found = _found(name="test_rfc2544[64B]")
    path = Results(rows=[row], searches=[found]).save(tmp_path / "base.json")
    base = gates.load_baseline(str(path))
    assert set(base.rows) == set(base.searches) == {"t.py::test_rfc2544[64B]"}  # two kinds
    thresholds = {"ndr_pps": 0.05, "pdr_pps": 0.05}
    same = gates.evaluate(found, baseline=base.searches, thresholds=thresholds)
    # the NDR's bounds 10,000..10,100 against themselves: 0.990..1.010, no change; the PDR
    # found no upper bound (irregular): its ratio has no upper end, undecided
    assert [(c.metric.name, c.verdict) for c in same.comparisons] == [
        ("ndr_pps", "no change"), ("pdr_pps", "undecided")]
    slower = _found(name="test_rfc2544[64B]")
    slower.goals[0] = GoalResult(Goal(0.0), 9_000.0, 9_100.0, 9_000.0)
    verdict = gates.evaluate(slower, baseline=base.searches, baseline_path="base.json",
                             thresholds=thresholds)
    assert verdict.baseline == "regression" and verdict.failures == [
        "ndr_pps ratio 0.900 (0.891..0.910): regression at a threshold of 5.0%, by the "
        "searches' bounds, against the baseline base.json (--pktgen-threshold)"]


def test_a_relative_gate_compares_a_search_s_ndr_with_its_reference():
    from pytest_pktgen.measurement import gates

    stock, patched = _found(label="stock"), _found(label="patched")
    patched.goals[0] = GoalResult(Goal(0.0), 8_000.0, 8_100.0, 8_000.0)
    rel = [gates.RelativeRequirement("stock", 0.9, "the marker")]
    verdict = gates.evaluate(patched, relative=rel, reference={"stock": stock}.get)
    assert verdict.ratio == pytest.approx(0.8) and verdict.failures == [
        "ndr_pps 8,000 is 0.80 x the reference 'stock' (10,000 ndr_pps, t.py::test_rfc2544); "
        "at least 0.90 x required by the marker"]
    assert gates.evaluate(stock, relative=rel, reference={}.get).failures == []  # itself


def test_a_warm_up_trial_is_a_setting_checked_before_anything_runs():
    from pytest_pktgen.measurement.search import SearchSettings

    assert SearchSettings(warmup=2.0).goals()
    for bad in (-1.0, True, "2", 7200):
        with pytest.raises(PktgenConfigError, match="warm-up trial"):
            SearchSettings(warmup=bad).goals()


def test_search_gate_and_threshold_options_parse_shares_and_keep_the_other_defaults(pytester):
    pytester.makeconftest("""
        from pytest_pktgen.session import STATE

        def pytest_collection_finish(session):
            state = session.config.stash[STATE]
            print("REQS", [(r.metric, r.value, r.of_line_rate) for r in state.requirements])
            print("THR", sorted(state.baseline_thresholds.items()), state.confidence)
    """)
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-s", "--pktgen-min-ndr", "95%", "--pktgen-min-pdr", "20000",
                                "--pktgen-threshold", "ndr_pps=2%", "--pktgen-confidence", "99%")
    result.stdout.fnmatch_lines([
        "REQS [('ndr_pps', 0.95, True), ('pdr_pps', 20000.0, False)]",
        "THR [('lat_p50_us', 0.1), ('lat_p99_us', 0.25), ('loss_ratio', 0.001), "
        "('ndr_pps', 0.02), ('pdr_pps', 0.05), ('pps', 0.05)] 0.99"])
    bad = pytester.runpytest("--pktgen-min-ndr", "150%")
    assert bad.ret == 4
    assert "min_ndr = '150%' is not a share of the line rate" in bad.stderr.str()


@pytest.mark.filterwarnings("error")
def test_a_search_plot_of_trials_all_at_one_load_and_loss_warns_nothing(tmp_path):
    from pytest_pktgen.measurement.report import plot_search

    same = [trial(), trial()]  # an irregular search at max load: one point, lossless
    found = SearchResult(64, [GoalResult(Goal(0.0), 10_000.0, None, 10_000.0)], same,
                         10_000.0, "given", 2.0)
    assert plot_search(found, tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_the_latency_at_the_ndr_is_in_the_row_the_json_and_the_table(tmp_path):
    from hdrh.histogram import HdrHistogram

    from pytest_pktgen.lab.latency import Latency

    found = _found()
    found.latency, found.latency_load = Latency(10, 30, 90, 500, 0, {30: 5, 60: 4, 90: 1}), 1e4
    columns = found.as_dict()
    assert (columns["latency_load"], columns["ndr_lat_p50_us"], columns["ndr_lat_p99_us"],
            columns["ndr_lat_max_us"]) == (1e4, 30.0, 90.0, 90.0)
    assert HdrHistogram.decode(found.detail()["latency_hdr"]).get_total_count() == 10
    assert "latency_hdr" not in _found().detail() and _found().as_dict()["ndr_lat_p99_us"] is None
    ((_, lines),) = search_tables([found, _found(frame=1500)])
    assert "p50 µs at NDR" in lines[0] and "p99 µs at NDR" in lines[0]
    assert lines[1].split()[-4:-2] == ["30", "90"] and lines[2].split()[-4:-2] == ["-", "-"]
