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

POLICED_PPS = 10_000
# The policer's bucket: pktgen keeps its average rate under TCG by sending what a descheduled
# vCPU held back at once, and nftables' default burst of 5 dropped frames at a third of the
# rate. A burst of BURST frames takes that; a trial of T seconds then passes at most
# rate x T + BURST frames: the known capacity of 1-s trials is POLICED_PPS + BURST.
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
def test_ndr_and_pdr_of_a_policed_router(forwarding, pktgen_search):
    _police(forwarding.hops["in0"].netns, POLICED_PPS)
    found = pktgen_search(forwarding, max_load=4 * POLICED_PPS, min_load=1_000)
    print(f"NDR {found.ndr_pps:,.0f} pps, PDR {found.pdr_pps:,.0f} pps, "
          f"{len(found.trials)} trials, {found.search_s:.0f} s")
    for trial in found.trials:
        print(f"  {trial.intended_load:9,.0f} pps -> loss {trial.loss_ratio:.4%} "
              f"({trial.received:,} of {trial.intended_count:,}, {trial.duration:.2f} s)")
    ndr, pdr = found.goal(0.0), found.goal(0.005)
    assert not ndr.irregular and not pdr.irregular
    # the policer passes its rate and its burst: a zero-loss load never exceeds them
    capacity = POLICED_PPS + BURST / 1.0  # 1-s trials
    assert ndr.lower_pps <= capacity * 1.001
    assert found.ndr_pps <= ndr.lower_pps < ndr.upper_pps
    assert found.ndr_pps >= POLICED_PPS * 0.95  # close: within 5 %, measured under TCG
    assert pdr.lower_pps >= ndr.lower_pps  # more loss allowed, never a lower rate
    assert found.pdr_pps >= found.ndr_pps
    # every trial above the policer's capacity lost what the policer dropped
    over = [t for t in found.trials if t.intended_load > capacity * 1.01]
    assert over and all(t.received < t.intended_count for t in over)


@pytest.mark.pktgen(frame=64)
def test_a_link_with_no_limit_below_max_load_is_irregular(veth, pktgen_search):
    found = pktgen_search(veth, max_load=5_000, min_load=1_000, loss_ratios=(0.0,))
    (ndr,) = found.goals
    assert ndr.irregular and ndr.upper_pps is None
    assert ndr.lower_pps == pytest.approx(5_000, rel=0.01)
    assert all(t.received == t.intended_count for t in found.trials)


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
def test_rfc2544(forwarding, pktgen_search):
    proc = call_in(forwarding.hops["in0"].netns, lambda: subprocess.run(
        ["nft", "-f", "-"], input=POLICE, text=True, capture_output=True))
    assert proc.returncode == 0, proc.stderr
    pktgen_search(forwarding)
"""


def test_a_search_in_the_reports_and_gated_by_its_ndr(pytester, tmp_path):
    """The pytest surface end to end: marker settings, the gate's failure with the NDR it
    measured, the table, searches.csv, results.json in MLRsearch's form, the plot, JUnit."""
    import json
    import xml.etree.ElementTree as ET

    pytester.makepyfile(SURFACE)
    out = tmp_path / "out"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--pktgen-out={out}",
                                f"--junitxml={out}/junit.xml")
    result.assert_outcomes(failed=1)
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
