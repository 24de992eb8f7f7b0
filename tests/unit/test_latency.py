"""Latency from pgrx's buckets: percentiles, merging rounds, the HdrHistogram encoding, the
gates on percentiles. (pgrx's own output is parsed in test_rx_parse.py, from a real run.)"""

from __future__ import annotations

import pytest
from hdrh.histogram import HdrHistogram

from pytest_pktgen.errors import PktgenConfigError
from pytest_pktgen.lab.latency import (
    SAMPLES_PER_S,
    UNPACED_EVERY,
    Latency,
    every_for,
    merged,
    pacing_wait_us,
    parse_buckets,
    sampled,
)
from pytest_pktgen.measurement import gates
from pytest_pktgen.measurement.row import Row
from pytest_pktgen.pktgen.params import DeviceConfig


def test_percentiles_are_exact_below_256_us_and_within_a_128th_above():
    # 100 samples: 50 at 100 us, 49 in the bucket 1,984..1,991 us, 1 at 9,000 us (8,960..)
    lat = Latency(100, 100, 9_000, 50 * 100 + 49 * 2_000 + 9_000, 0,
                  {100: 50, 1_984: 49, 8_960: 1})
    pct = lat.percentiles()
    assert pct["p50"] == 100.0  # exact
    assert 1_984 <= pct["p90"] <= 1_984 * (1 + 1 / 128)  # the bucket's highest value
    assert pct["p99"] == pct["p90"]
    assert pct["p99.9"] == pct["max"] == 9_000.0  # never above the exact max
    assert lat.avg_us == pytest.approx(1_120.0)
    assert Latency().percentiles() == dict.fromkeys(("p50", "p90", "p99", "p99.9", "max"))


def test_rounds_merge_into_one_distribution_and_encode_for_any_hdr_library():
    a = Latency(3, 10, 30, 60, 0, {10: 1, 20: 1, 30: 1})
    b = Latency(2, 5, 40, 45, 1, {5: 1, 40: 1})
    both = merged([a, None, b])
    assert (both.samples, both.min_us, both.max_us, both.sum_us, both.future) == (5, 5, 40, 105, 1)
    assert both.buckets == {10: 1, 20: 1, 30: 1, 5: 1, 40: 1}
    assert merged([None, None]) is None and a + Latency() == a
    decoded = HdrHistogram.decode(both.encoded())
    assert decoded.get_total_count() == 5 and decoded.get_value_at_percentile(50) == 20


def test_pgrx_samples_one_number_in_n_by_a_hash_that_no_period_lines_up_with():
    assert all(sampled(seq, 1) for seq in range(1, 1_000)) and not any(
        sampled(seq, 0) for seq in range(1, 1_000))
    for every in (2, 7, 16, 64):
        picked = sum(sampled(seq, every) for seq in range(1, 100_001))
        assert abs(picked - 100_000 / every) <= 0.02 * 100_000 / every, (every, picked)
        # a loss of every 7th or 10th packet takes its share of the sample, no more
        for period in (7, 10):
            kept = sum(sampled(seq, every) for seq in range(1, 100_001) if seq % period)
            assert abs(kept / picked - (period - 1) / period) < 0.03, (every, period)


def test_a_measurement_samples_every_packet_up_to_its_budget_and_fewer_above():
    def configs(*paces, **more):
        return [DeviceConfig(f"eth1@{n}", {"pkt_size": 60, **({"ratep": p} if p else {}),
                                           **more}, thread=n) for n, p in enumerate(paces)]

    assert every_for("auto", configs(2_000)) == 1
    assert every_for("auto", configs(SAMPLES_PER_S - 100)) == 1
    assert every_for("auto", configs(SAMPLES_PER_S + 100)) == 2
    assert every_for("auto", configs(20_000, 20_000)) == 2  # the devices' rates add up
    assert every_for("auto", configs(1_000_000)) == 32  # the power of two that keeps the budget
    assert every_for("auto", configs(2_000, None)) == UNPACED_EVERY  # one device unpaced
    assert every_for("auto", configs(None, delay=10_000)) == 4  # a delay (ns): 100 kpps
    assert every_for(3, configs(None)) == 3 and every_for(0, configs(2_000)) == 0
    for bad in (-1, 1 << 21, 2.5, True, "often"):
        with pytest.raises(PktgenConfigError, match="latency_every"):
            every_for(bad, configs(2_000))
    a, b = Latency(1, 5, 5, 5, 0, {5: 1}, every=16), Latency(1, 7, 7, 7, 0, {7: 1}, every=64)
    assert (a + b).every == 64 and (a + Latency()).every == 16  # merged: the sparsest


def test_pgrx_bucket_lines_and_the_pacing_wait():
    assert parse_buckets("8 0:3 255:1 256:2 1984:7") == (8, {0: 3, 255: 1, 256: 2, 1984: 7})
    assert pacing_wait_us(2_000) == 500.0 and pacing_wait_us(None) == pacing_wait_us(0) == 0.0


def test_latency_columns_and_gates_on_percentiles():
    row = Row("t.py::test_a", latency=Latency(100, 100, 300, 15_000, 0, {100: 50, 200: 50}),
              pacing_wait_us=100.0)
    assert row.as_dict()["lat_p50_us"] == 100.0 and row.lat_p99_us == 200.0
    assert row.as_dict()["pacing_wait_us"] == 100.0 and row.lat_max_us == 300.0
    reqs = gates.latency_requirements({"p99": 150, "p50": 100}, "the marker")
    assert gates.check(row, reqs) == [
        "lat_p99_us 200 µs measured, at most 150 µs required by the marker"]
    unmeasured = Row("t.py::test_b")
    assert unmeasured.lat_p99_us is None and "lat_p99_us" not in unmeasured.as_dict()
    assert gates.check(unmeasured, reqs[:1]) == [
        'lat_p99_us was not measured (latency needs the kmod receive counter, rx="kmod"), but '
        "the marker requires it"]
    for bad in ({"p42": 1}, {"p99": -1}, {"p99": True}, 500, {}):
        with pytest.raises(ValueError, match="max_latency_us"):
            gates.latency_requirements(bad, "x")


def test_the_marker_takes_latency_by_percentile_and_other_gates_by_frame():
    kwargs = {"max_latency_us": {"p99": 500}, "min_pps": {64: 1e6, 1500: 8e4}}
    plain, _ = gates.marker_requirements(kwargs, "t")
    assert [(r.metric, r.value) for r in plain] == [("lat_p99_us", 500.0)]
    assert [(r.metric, r.value) for r in gates.per_frame(kwargs, 64, "t")] == [("pps", 1e6)]
    by_frame = {"max_latency_us": {64: {"p50": 80}}}
    assert [(r.metric, r.value) for r in gates.per_frame(by_frame, 64, "t")] == [
        ("lat_p50_us", 80.0)]


def test_each_round_keeps_its_own_percentiles_and_a_baseline_compares_them():
    """Two rounds counted by pgrx (real captures: 10,000 frames sampled 1 in 16, and 5,000
    sampled every one): each round's p50/p99 are its own, not the merged ones."""
    from pathlib import Path

    from pytest_pktgen.lab.rx import parse_pgrx
    from pytest_pktgen.measurement.point import Point
    from pytest_pktgen.pktgen.parse import parse_device
    from pytest_pktgen.run.runner import RunResult

    captured = Path(__file__).parent.parent / "data" / "captured"
    counts = [parse_pgrx((captured / name).read_text()) for name in (
        "pgrx-veth-latency-every16.txt", "pgrx-veth-every7th-dropped.txt")]
    status = parse_device((captured / "device-ipv4-crossover.txt").read_text())
    run = RunResult(devices={"d": status}, configs={}, wall_s=1.0, stopped_by_us=False)
    row = Row.of("t.py::test_a", "test_a", Point(), None, [run, run],
                 received=[c.packets for c in counts], rx_backend="kmod", counts=counts,
                 latency=counts[0].latency + counts[1].latency)
    for figures, count in zip(row.per_round, counts, strict=True):
        assert figures["lat_p99_us"] == count.latency.percentiles()["p99"]
        assert figures["lat_samples"] == count.latency.samples
        assert figures["received"] == count.packets
    saved = {row.key: {"per_round": [{**r, "lat_p99_us": r["lat_p99_us"] / 2}
                                     for r in row.per_round]}}
    found, failures, comparisons = gates.compare_baseline(row, saved, "base.json",
                                                          {"lat_p99_us": 0.25})
    p99 = next(c for c in comparisons if c.metric.name == "lat_p99_us")
    # twice the latency, but two rounds this far apart (one degree of freedom) settle nothing
    assert p99.estimate == pytest.approx(2.0) and p99.verdict == "undecided"
    assert found and failures == [] and p99.rounds_needed > 2


def test_reports_carry_the_latency_columns_and_every_sample_as_hdr(tmp_path):
    import json
    from dataclasses import replace

    import pandas as pd

    from pytest_pktgen.measurement.point import Point
    from pytest_pktgen.measurement.report import Results, tables

    lat = Latency(100, 90, 400, 15_000, 0, {90: 50, 200: 49, 400: 1})
    rows = [Row("t.py::test_a[64B]", name="test_a", point=Point(frame=64), pps=2_000.0,
                offered=100, sent=100, received=100, rx_backend="kmod", latency=lat,
                pacing_wait_us=500.0),
            Row("t.py::test_a[1500B]", name="test_a", point=Point(frame=1500), pps=1_000.0,
                offered=100, sent=100, received=100, rx_backend="kmod")]
    paths = Results(rows=rows).write(str(tmp_path), plots=False)
    csv = pd.read_csv(paths["csv"], comment="#")
    assert list(csv["lat_p50_us"].fillna(-1)) == [90.0, -1] and csv.loc[0, "lat_p99_us"] == 200.0
    assert csv.loc[0, "pacing_wait_us"] == 500.0 and "latency_hdr" not in csv
    first, second = json.loads(paths["json"].read_text())["results"]
    assert HdrHistogram.decode(first["latency_hdr"]).get_total_count() == 100
    assert "latency_hdr" not in second
    ((title, lines),) = tables(rows)
    assert lines[0].split()[-7:] == ["p50", "µs", "p99", "µs", "max", "µs", "gate"]
    assert lines[1].split()[-3:] == ["90", "200", "400"] and lines[2].split()[-3:] == ["-"] * 3
    assert title.endswith(", latency of every packet") and csv.loc[0, "lat_every"] == 1
    rows[1] = replace(rows[1], latency=replace(lat, every=64))
    ((title, _),) = tables(rows)
    assert title.endswith(", latency of every packet or 1 packet in 64")


def test_every_latency_column_is_an_attribute_of_a_row():
    from pytest_pktgen.measurement.row import LATENCY_COLUMNS

    row = Row("t", latency=Latency(2, 10, 20, 30, 0, {10: 1, 20: 1}))
    assert {c: getattr(row, c) for c in LATENCY_COLUMNS} == {
        c: row.as_dict()[c] for c in LATENCY_COLUMNS}
    assert row.lat_samples == 2 and Row("t").lat_samples is None
    with pytest.raises(AttributeError):
        row.lat_p42_us  # noqa: B018


def test_latency_across_hosts_carries_their_clocks_offset(tmp_path):
    """Stamped on one machine, read on another: the offset and its uncertainty stand beside
    the figures, in the columns and under the table; on one machine, neither."""
    import json

    from pytest_pktgen.host.clock import ClockOffset
    from pytest_pktgen.measurement.point import Point
    from pytest_pktgen.measurement.report import Results, tables

    lat = Latency(100, 90, 400, 15_000, 0, {90: 50, 200: 49, 400: 1})
    across = Row("t.py::test_a[64B]", name="test_a", point=Point(frame=64), pps=2e3,
                 offered=100, sent=100, received=100, rx_backend="kmod", latency=lat,
                 clock=ClockOffset(-1_500, 2_250))
    here = Row("t.py::test_a[1500B]", name="test_a", point=Point(frame=1500), pps=2e3,
               offered=100, sent=100, received=100, rx_backend="kmod", latency=lat)
    assert (across.lat_clock_offset_us, across.lat_clock_uncertainty_us) == (-1.5, 2.25)
    assert here.lat_clock_offset_us is None and "lat_clock_offset_us" not in here.as_dict()
    paths = Results(rows=[across, here]).write(str(tmp_path), plots=False)
    first, second = json.loads(paths["json"].read_text())["results"]
    assert first["lat_clock_offset_us"] == -1.5 and second["lat_clock_offset_us"] is None
    ((_, lines),) = tables([across, here])
    assert "  64B latency across hosts: the sink's clock minus the generator's -2 us +- 2 us, " \
           "in every sample" in lines
    assert sum("latency across hosts" in line for line in lines) == 1


@pytest.mark.filterwarnings("error")
def test_a_latency_plot_per_test_a_line_per_point(tmp_path):
    from pytest_pktgen.measurement.point import Point
    from pytest_pktgen.measurement.report import Results

    lat = Latency(100, 90, 400, 15_000, 0, {90: 50, 200: 49, 400: 1})
    rows = [Row(f"t.py::test_a[{f}B]", name="test_a", point=Point(frame=f), pps=2e3, offered=100,
                sent=100, received=100, rx_backend="kmod", latency=lat, pacing_wait_us=500.0)
            for f in (64, 1500)]
    rows.append(Row("t.py::test_b", name="test_b", point=Point(frame=64), pps=2e3))  # none
    paths = Results(rows=rows).write(str(tmp_path))
    assert paths["latency png test_a"].name == "latency-test_a.png"
    assert paths["latency png test_a"].read_bytes()[:4] == b"\x89PNG"
    assert not [k for k in paths if k.endswith("test_b")]
    assert not [k for k in Results(rows=rows).write(str(tmp_path / "bare"), plots=False)
                if k.startswith("latency")]


def test_several_generators_latency_carries_one_interval_holding_each_clock():
    """A measurement of several generators: the sinks' clocks minus the generators' as one
    interval that holds every one's offset +- uncertainty; one machine's leg counts as 0."""
    from types import SimpleNamespace
    from unittest import mock

    from pytest_pktgen.host.clock import ClockOffset
    from pytest_pktgen.measurement import measure

    legs = [SimpleNamespace(topology=n) for n in ("a", "c", "here")]
    clocks = {"a": ClockOffset(-1_000, 500), "c": ClockOffset(3_000, 1_000), "here": None}
    with mock.patch.object(measure, "clock_between", lambda t: clocks[t]):
        assert measure._clock_of(legs) == ClockOffset(1_250, 2_750)  # -1,500 .. 4,000 (and 0)
        assert measure._clock_of(legs[:1]) == clocks["a"]
        assert measure._clock_of(legs[2:]) is None
    tags = measure._tags([SimpleNamespace(generator_host=h) for h in ("a", "c", "a", None)])
    assert tags == ["a#1", "c", "a#3", "here"]
    assert measure._tags([SimpleNamespace(generator_host="a")]) == [""]
