"""RFC 2544 throughput with MLRsearch on a device whose capacity is known: the forwarding
router with an nftables policer at a rate chosen here. The NDR found never exceeds the
policer's rate and comes close to it; the PDR lies at or above the NDR; a link with no limit
below the max load ends irregular."""

from __future__ import annotations

import subprocess

import matplotlib.pyplot  # noqa: F401 - imported once here: the nested session runs in this
import pandas  # noqa: F401 - process, and numpy cannot be imported twice (pytester unloads it)
import pytest

from pytest_pktgen.host.netns import call_in

pytestmark = pytest.mark.integration

# Two known capacities: the NDR must follow the policer's rate, not a figure of the lab (the
# router forwards 14-22 kpps under TCG: 30 kpps would measure the router, not the policer).
POLICED_PPS = (5_000, 10_000)
# The policer's bucket: pktgen keeps its average rate under TCG by sending what a descheduled
# vCPU held back at once, and nftables' default burst of 5 dropped frames at a third of the
# rate. A burst of BURST frames takes that; a trial of T seconds then passes at most
# rate x T + BURST frames: the known capacity of 1-s trials is the rate + BURST.
BURST = 200


def _police(netns: str, pps: int) -> None:
    """Drop what the router forwards above ``pps`` (nftables' token bucket)."""
    script = f"""
        table inet pgpolice {{
            chain forward {{
                type filter hook forward priority 0; policy accept;
                meta l4proto udp udp dport 9 limit rate over {pps}/second burst {BURST} packets drop
            }}
        }}"""
    proc = call_in(netns, lambda: subprocess.run(["nft", "-f", "-"], input=script, text=True,
                                                 capture_output=True))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.pktgen(frame=64)
@pytest.mark.parametrize("policed", POLICED_PPS, ids=lambda pps: f"{pps // 1000}kpps")
def test_ndr_and_pdr_of_a_policed_router(forwarding, pktgen_search, policed):
    _police(forwarding.hops["in0"].netns, policed)
    found = pktgen_search(forwarding, max_load=4 * policed, min_load=1_000)
    print(f"NDR {found.ndr_pps:,.0f} pps, PDR {found.pdr_pps:,.0f} pps, "
          f"{len(found.trials)} trials, {found.search_s:.0f} s")
    for trial in found.trials:
        print(f"  {trial.intended_load:9,.0f} pps -> loss {trial.loss_ratio:.4%} "
              f"({trial.received:,} of {trial.intended_count:,}, {trial.duration:.2f} s)")
    ndr, pdr = found.goal(0.0), found.goal(0.005)
    assert not ndr.irregular and not pdr.irregular
    # the policer passes its rate and its burst: a zero-loss load never exceeds them
    capacity = policed + BURST / 1.0  # 1-s trials
    assert ndr.lower_pps <= capacity * 1.001
    assert found.ndr_pps <= ndr.lower_pps < ndr.upper_pps
    assert found.ndr_pps >= policed * 0.95  # close: within 5 %, measured under TCG
    assert pdr.lower_pps >= ndr.lower_pps  # more loss allowed, never a lower rate
    assert found.pdr_pps >= found.ndr_pps
    # every trial above the policer's capacity lost what the policer dropped
    over = [t for t in found.trials if t.intended_load > capacity * 1.01]
    assert over and all(t.received < t.intended_count for t in over)


@pytest.mark.pktgen(frame=64)
def test_rfc2544_latency_at_the_ndr_with_pgrx(forwarding, pktgen_search):
    """With pgrx counting, the search ends with RFC 2544's latency test: a trial at the NDR's
    lower bound, every packet's latency (a lossless load: every packet a sample)."""
    _police(forwarding.hops["in0"].netns, POLICED_PPS[0])
    found = pktgen_search(forwarding, rx="kmod", max_load=4 * POLICED_PPS[0], min_load=1_000,
                          loss_ratios=(0.0,), relative_width=0.05)
    assert found.latency_load == found.goal(0.0).lower_pps <= POLICED_PPS[0] + BURST
    assert found.latency.samples >= round(found.latency_load) * 0.99  # 1 s at a lossless load
    pct = found.latency.percentiles()
    assert 0 < pct["p50"] <= pct["p99"] <= pct["max"]
    assert found.as_dict()["ndr_lat_p99_us"] == pct["p99"]
    assert len(found.trials) >= 2  # the latency trial is not one of the search's


@pytest.mark.pktgen(frame=64)
def test_a_link_with_no_limit_below_max_load_is_irregular(veth, pktgen_search):
    found = pktgen_search(veth, max_load=5_000, min_load=1_000, loss_ratios=(0.0,), warmup=0.5)
    (ndr,) = found.goals
    assert ndr.irregular and ndr.upper_pps is None
    assert ndr.lower_pps == pytest.approx(5_000, rel=0.01)
    assert all(t.received == t.intended_count for t in found.trials)
    warmup, *searched = found.trials  # MLRsearch's warm-up trial first, at max load, flagged
    assert warmup.warmup and warmup.intended_load == 5_000 and warmup.intended_duration == 0.5
    assert searched and not any(t.warmup for t in searched)
    assert found.line_rate_pps is None  # a veth has no speed: no share of a line rate


# what pytest-benchmark kept of the test (its JSON would cost a minute of py-cpuinfo under TCG)
EXTRA_INFO = """
import json

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "call" and "benchmark" in item.funcargs:
        bench = item.funcargs["benchmark"]
        with open("benchmark.json", "w") as f:
            json.dump({"extra_info": bench.extra_info,
                       "rounds": len(bench.stats.stats.data)}, f)
    return report
"""

SURFACE = """
import subprocess

import pytest

from pytest_pktgen.host.netns import call_in

POLICE = '''
table inet pgpolice {
    chain forward {
        type filter hook forward priority 0; policy accept;
        meta l4proto udp udp dport 9 limit rate over 10000/second burst 200 packets drop
    }
}'''


@pytest.mark.pktgen_sweep(frame=[64])
@pytest.mark.pktgen_search(relative_width=0.05, max_load=40000)
@pytest.mark.pktgen_gate(min_ndr={64: 20000})
def test_rfc2544(forwarding, pktgen_search, benchmark):
    proc = call_in(forwarding.hops["in0"].netns, lambda: subprocess.run(
        ["nft", "-f", "-"], input=POLICE, text=True, capture_output=True))
    assert proc.returncode == 0, proc.stderr
    pktgen_search(forwarding)


def test_searched_twice(dummy, pktgen_search):
    with pytest.raises(pytest.UsageError, match="needs a topology with a sink"):
        pktgen_search(dummy)
    pktgen_search(dummy)  # its key taken: refused before a trial (it would overwrite)
"""


def test_a_search_in_the_reports_and_gated_by_its_ndr(pytester, tmp_path):
    """The pytest surface end to end: marker settings, the gate's failure with the NDR it
    measured, the table, searches.csv, results.json in MLRsearch's form, the plot, JUnit,
    the saved baseline and what pytest-benchmark kept."""
    import json
    import xml.etree.ElementTree as ET

    pytester.makepyfile(SURFACE)
    pytester.makeconftest(EXTRA_INFO)
    out = tmp_path / "out"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--pktgen-out={out}",
                                f"--junitxml={out}/junit.xml",
                                f"--pktgen-save-baseline={out}/base.json")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*pktgen_search: *::test_searched_twice searches twice without a label; "
        "give each search of a test its own label=*"])
    result.stdout.fnmatch_lines([
        "pktgen gate: ndr_pps * measured, at least 20,000 required by the pktgen_gate marker "
        "of *test_rfc2544* (frame 64)",
        "*test_rfc2544: 1 throughput search(es), received counted by ifstats, sink tc-drop*",
        "*frame*pkt_size*NDR pps*NDR L1 Mb/s*PDR 0.5% pps*",
        f"pktgen searches csv: {out}/searches.csv"])
    doc = json.loads((out / "results.json").read_text())
    (found,) = doc["searches"]
    ndr, pdr = found["goals"]
    assert ndr["search_goal"]["relative_width"] == 0.05
    assert ndr["conditional_throughput"] == found["ndr_pps"] <= (10_000 + 200) * 1.001
    assert pdr["relevant_lower_bound"] >= ndr["relevant_lower_bound"]
    assert found["max_load"] == 40_000 and found["max_load_from"] == "given"
    assert len(found["trials"]) == found["trial_count"] >= 2
    assert (out / "search-1-test_rfc2544-64B.png").read_bytes()[:4] == b"\x89PNG"
    props = {p.get("name"): p.get("value")
             for p in ET.parse(out / "junit.xml").getroot().iter("property")}
    assert float(props["pktgen_ndr_pps"]) == pytest.approx(found["ndr_pps"])
    assert props["pktgen_gate"] == found["gate"] == "FAIL"
    # the baseline is the session's document: the search with its goals' bounds, which a
    # later session's comparison reads
    assert json.loads((out / "base.json").read_text()) == doc
    timed = json.loads((pytester.path / "benchmark.json").read_text())
    assert timed["extra_info"]["ndr_pps"] == found["ndr_pps"]
    assert timed["rounds"] == 1  # pytest-benchmark timed the search itself
