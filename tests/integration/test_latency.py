"""Latency on a path whose delay is known: netem on the forwarding router's egress adds
DELAYS_MS, one after the other, and pgrx (the kmod counter) measures every packet's one-way
latency at the sink. The median must move by the delay added (within MARGIN, measured under
TCG), the p99 lie at or above the median, and the path without netem be the fastest. And
pktgen's own pacing wait is in every paced sample, as the reports say: halving the rate moves
the median by the gap it adds. A sample of one packet in 16 sees the known delay too.

Measured here (medians, forwarding, no netem): unpaced 33 us; paced at 500, 1000, 2000, 5000
pps 1,959, 971, 463, 62 us: the wait is the gap less pktgen's own time per packet under TCG.
Netem 2 ms / 5 ms moved the paced median by 2,176 / 5,168 us, the unpaced one by 2,110 /
5,118 us. The unpaced median has no known answer: when the guest is slow (CI beside a kernel
build) the generator outruns the router and it is the queue's length (6,239 us once), so it is
only checked for carrying no pacing wait."""

from __future__ import annotations

import subprocess

import pytest

from pytest_pktgen.host.netns import call_in
from pytest_pktgen.lab.latency import UNPACED_EVERY, sampled

pytestmark = pytest.mark.integration

# Paced well below what the router forwards under TCG (14-22 kpps): no queue in front of
# netem, so what moves is the delay. pktgen stamps a packet, then waits for its send time: at
# PACE each sample carries up to 1/PACE s of that wait, the same with and without netem.
PACE = 2_000
DELAYS_MS = (2, 5)
# How far the median's move may stray from the delay added: a share of it plus a constant
# (netem's timer and the guest's scheduling under TCG; measured below).
MARGIN = (0.10, 300)  # 10 % + 300 us
SPARSE = 16  # a sampled measurement: one sequence number in 16 (250 of 4,000 packets)


def _netem(out, delay_ms: int | None) -> None:
    """netem on the router's egress towards the sink (a test helper: the library itself never
    shells out); None removes it."""
    args = (["qdisc", "replace", "dev", out.ifname, "root", "netem", "delay", f"{delay_ms}ms",
             "limit", "100000"] if delay_ms else ["qdisc", "del", "dev", out.ifname, "root"])
    proc = call_in(out.netns, lambda: subprocess.run(["tc", *args], capture_output=True,
                                                     text=True))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.pktgen(frame=64, count=2 * PACE, rounds=1, rx="kmod")
@pytest.mark.pktgen_gate(max_latency_us={"p99": 60_000})  # a gate on a percentile that holds
def test_a_known_netem_delay_moves_the_median_by_its_size(forwarding, pktgen_bench):
    out = forwarding.hops["out"]
    unpaced = pktgen_bench(forwarding, label="unpaced").row
    slower = pktgen_bench(forwarding, label="half the rate", ratep=PACE // 2).row
    measured = {0: pktgen_bench(forwarding, label="no netem", ratep=PACE).row}
    try:
        for delay in DELAYS_MS:
            _netem(out, delay)
            measured[delay] = pktgen_bench(forwarding, label=f"netem {delay} ms",
                                           ratep=PACE).row
        # the last delay again, latency sampled at one sequence number in SPARSE
        sparse = pktgen_bench(forwarding, label=f"netem {DELAYS_MS[-1]} ms, 1 in {SPARSE}",
                              ratep=PACE, latency_every=SPARSE).row
    finally:
        _netem(out, None)
    for delay, row in measured.items():
        print(f"netem {delay} ms: p50 {row.lat_p50_us:,.0f} us, p90 {row.lat_p90_us:,.0f}, "
              f"p99 {row.lat_p99_us:,.0f}, max {row.lat_max_us:,.0f} ({row.lat_samples} "
              f"samples; pacing wait {row.pacing_wait_us:,.0f} us)")
    base = measured[0]
    print(f"half the rate: p50 {slower.lat_p50_us:,.0f} us (pacing wait "
          f"{slower.pacing_wait_us:,.0f} us); unpaced p50 {unpaced.lat_p50_us:,.0f} us")
    # pktgen stamps, then waits for the send time: the paced median carries that wait (the
    # reports' pacing_wait_us), at most one gap; a gap twice as long moves it by the gap added
    # unpaced: a measurement samples one sequence number in UNPACED_EVERY (a clock read per
    # packet would cost the sink pps); paced this slowly, every one
    assert unpaced.pacing_wait_us == 0 and unpaced.lat_every == UNPACED_EVERY
    picked = sum(sampled(seq, UNPACED_EVERY) for seq in range(1, 2 * PACE + 1))
    assert 0 < unpaced.lat_samples <= picked
    assert unpaced.lat_samples == picked or unpaced.received < unpaced.sent
    assert slower.pacing_wait_us == pytest.approx(2e6 / PACE)
    assert slower.received == slower.lat_samples == 2 * PACE
    added = slower.pacing_wait_us - base.pacing_wait_us
    moved = slower.lat_p50_us - base.lat_p50_us
    assert abs(moved - added) <= added * MARGIN[0] + MARGIN[1], (
        f"a gap {added:,.0f} us longer moved the median by {moved:,.0f} us")
    assert base.lat_p50_us <= base.pacing_wait_us + MARGIN[1]
    for delay, row in measured.items():
        assert row.received == row.sent == 2 * PACE  # nothing lost: every packet a sample
        assert row.lat_samples == row.received and row.lat_every == 1
        assert row.lat_p50_us <= row.lat_p90_us <= row.lat_p99_us <= row.lat_max_us
        assert row.pacing_wait_us == pytest.approx(1e6 / PACE)
        if delay:
            moved, added = row.lat_p50_us - base.lat_p50_us, delay * 1000
            assert abs(moved - added) <= added * MARGIN[0] + MARGIN[1], (
                f"netem {delay} ms moved the median by {moved:,.0f} us")
            assert row.lat_p50_us > base.lat_p50_us  # the path without netem is the fastest
    assert measured[DELAYS_MS[0]].lat_p50_us < measured[DELAYS_MS[1]].lat_p50_us
    # a sample of one number in SPARSE: exactly the numbers pgrx's hash picks, and its median
    # moved by the known delay as every packet's did
    assert sparse.received == sparse.sent == 2 * PACE and sparse.lat_every == SPARSE
    assert sparse.lat_samples == sum(sampled(seq, SPARSE) for seq in range(1, 2 * PACE + 1))
    moved, added = sparse.lat_p50_us - base.lat_p50_us, DELAYS_MS[-1] * 1000
    assert abs(moved - added) <= added * MARGIN[0] + MARGIN[1], (
        f"netem {DELAYS_MS[-1]} ms moved the sampled median by {moved:,.0f} us")
