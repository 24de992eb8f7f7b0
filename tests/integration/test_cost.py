"""What a packet costs the CPUs, on answers known in advance: pktgen's thread sending flat out
is busy all of pktgen's elapsed time; paced at a gap far above its work per packet it sleeps
most of it; and clone_skb (one skb sent again and again) costs it less per packet than
building each one (the paper's Table 1 rows)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

PACE = 2_000  # pps: a 500 µs gap, which pktgen sleeps through (it spins below 100 µs)


@pytest.mark.pktgen(frame=64, count=100_000, rounds=1)
def test_a_busy_thread_a_paced_one_and_clones_cost_what_they_must(dummy, pktgen_bench):
    free = pktgen_bench(dummy, label="free").row
    clones = pktgen_bench(dummy, label="clone", clone_skb=100).row
    for row in (free, clones):
        print(row.label, row.cpu_cost(), f"{row.pps:,.0f} pps")
        assert 0.8 <= row.pktgen_busy <= 1.05  # sending flat out: never off its CPU for long
        # its cost per packet is then its time between packets (1/pps), within what it was off
        assert row.cpu_pktgen_ns == pytest.approx(1e9 / row.pps, rel=0.2)
    assert clones.cpu_pktgen_ns < 0.9 * free.cpu_pktgen_ns  # no skb to build, most packets


@pytest.mark.pktgen(frame=64, count=2 * PACE, rounds=1)
def test_a_paced_thread_sleeps_between_its_packets(dummy, pktgen_bench):
    paced = pktgen_bench(dummy, ratep=PACE).row
    print(paced.cpu_cost(), f"{paced.pps:,.0f} pps")
    assert paced.cpu.pktgen_ns > 0
    assert paced.pktgen_busy < 0.5
    assert paced.cpu_pktgen_ns < 0.5 * 1e9 / PACE
