"""8. pgrx: what counting every packet costs pktgen, at the sink device's netdev ingress (the
default: before the IP layer) and at PRE_ROUTING (after ip_rcv), side by side against counting
with the interface counters only; and how stable its latency percentiles are over repeated runs
of one setup. pgrx samples latency as a measurement of an unpaced run does (one sequence number
in UNPACED_EVERY); a fourth variant samples every packet, what its clock reads cost.

The cost is measured inside one pktgen run that never stops: the sink is switched between the
variants every window, and each window's pps comes from pktgen's own count. Separate runs of
300,000 frames moved by a quarter from one to the next on this lab (the host's load drifts),
so 9 rounds of them could not tell 0.95 from 1.05; windows a second apart, rotated, can.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest
from abstats import ratio_interval, verdict

from pytest_pktgen import host
from pytest_pktgen.lab.latency import UNPACED_EVERY
from pytest_pktgen.lab.rx import KmodCounter
from pytest_pktgen.run.runner import PktgenRun

pytestmark = pytest.mark.integration

ROUNDS = int(os.environ.get("PKTGEN_BENCH_ROUNDS", "60"))
WINDOW_S = 1.0
SETTLE_S = 0.2  # after a switch, before the window opens
REPEATS = 10
LATENCY_COUNT = 20_000
LATENCY_PACE = 2_000  # pps: paced, as latency is compared (README: Latency)
VARIANTS = ("ifstats", "prerouting", "ingress", "every")
# the hook and latency sample of each pgrx variant
PGRX = {"prerouting": ("prerouting", UNPACED_EVERY), "ingress": ("ingress", UNPACED_EVERY),
        "every": ("ingress", 1)}


def test_pgrx_cost_at_ingress_and_at_prerouting(veth, pgrx, record):
    sink = veth.sink
    config = veth.config(count=0, pkt_size=60)  # until stopped
    # a netdev-ingress hook that stays on (pgrx at a dummy's ingress) keeps the kernel's
    # static keys of ingress hooks on throughout: a switch flipping them rewrites kernel code,
    # which stalled pktgen for a whole window under TCG. In the generator's namespace: in the
    # sink's, pgrx would count at ingress only, and not at PRE_ROUTING
    keep_ns = veth.generator_ns
    with host.on(keep_ns).netlink() as ipr:
        ipr.link("add", ifname="pgkeep0", kind="dummy")
    keeper = KmodCounter("pgkeep0", keep_ns, drop=True)
    assert keeper.hook == "ingress", keeper.hook_error
    veth.discard_at_sink()
    counter = KmodCounter(sink.ifname, sink.netns, drop=True)
    assert counter.hook == "ingress", counter.hook_error

    def switch(variant: str) -> None:
        """ifstats: the tc discard drops them before pgrx sees them; the others: pgrx counts
        and drops them at its hook, sampling latency as :data:`PGRX` says."""
        if variant == "ifstats":
            veth.discard_at_sink()
            return
        veth.lift_discard()
        hook, every = PGRX[variant]
        counter.set_hook(hook)
        counter.sample_latency(every)

    rows = []
    with PktgenRun([config], pktgen=veth.pktgen, duration=3600) as run:
        run.start()
        try:
            deadline = time.monotonic() + 30
            while run.sample().sofar[config.device] == 0:  # its thread may start late
                assert time.monotonic() < deadline, "pktgen sent nothing in 30 s"
                time.sleep(0.1)
            for index in range(ROUNDS):
                turn = index % len(VARIANTS)
                order = VARIANTS[turn:] + VARIANTS[:turn]  # each goes first in turn
                pps = {}
                for variant in order:
                    switch(variant)
                    time.sleep(SETTLE_S)
                    first, before = run.sample(), counter.read().dropped
                    time.sleep(WINDOW_S)
                    last, after = run.sample(), counter.read().dropped
                    sent = last.sofar[config.device] - first.sofar[config.device]
                    pps[variant] = sent / (last.t - first.t)
                    # the variant really was: pgrx dropped what was sent, or saw nothing
                    grew = after - before
                    assert grew > 0.9 * sent if variant != "ifstats" else grew == 0, \
                        (variant, grew, sent)
                rows.append({"round": index + 1, "order": "/".join(order),
                             **{f"{v}_pps": pps[v] for v in VARIANTS},
                             "prerouting_vs_ifstats": pps["prerouting"] / pps["ifstats"],
                             "ingress_vs_ifstats": pps["ingress"] / pps["ifstats"],
                             "ingress_vs_prerouting": pps["ingress"] / pps["prerouting"],
                             "every_vs_ifstats": pps["every"] / pps["ifstats"],
                             "every_vs_ingress": pps["every"] / pps["ingress"]})
        finally:
            run.stop()
            veth.discard_at_sink()
            counter.close()
            keeper.close()
            with host.on(keep_ns).netlink() as ipr:
                ipr.link("del", index=ipr.link_lookup(ifname="pgkeep0")[0])
        status = run.collect()[config.device]
    dropped = counter.read().dropped
    assert dropped > 0 and status.result.errors == 0, (dropped, status.result.errors)
    ratios = ("prerouting_vs_ifstats", "ingress_vs_ifstats", "ingress_vs_prerouting",
              "every_vs_ifstats", "every_vs_ingress")
    means = {k: ratio_interval([r[k] for r in rows])[1] for k in ratios}
    ifstats = [r["ifstats_pps"] for r in rows]
    floor = [a / b for a, b in zip(ifstats, ifstats[1:], strict=False)]
    low, _, high = ratio_interval(floor)
    rows.append({"round": "geomean", "order": "", **{f"{v}_pps": statistics.median(
        r[f"{v}_pps"] for r in rows) for v in VARIANTS}, **means})
    record("8. pgrx", f"its cost: 64 B frames over veth in one pktgen run, the sink switched "
           f"every {WINDOW_S:g} s between counting and dropping with pgrx at its netdev "
           f"ingress, at PRE_ROUTING, or with the interface counters only (tc drop), "
           f"{ROUNDS} rounds, each variant first in turn", rows, [
               "ifstats = the sink's tc discard drops the frames, the interface counters count "
               "them; ingress = pgrx counts and drops every frame at the sink veth's netdev "
               "ingress (the default), its latency sampled at one sequence number in "
               f"{UNPACED_EVERY} (an unpaced measurement's), prerouting = the same at "
               "PRE_ROUTING, after ip_rcv; every = at ingress, every packet's latency sampled; "
               "pps of each window from pktgen's own count; the pps columns' last row is "
               "their median, the ratios' their geometric mean",
               verdict([r["ingress_vs_ifstats"] for r in rows[:-1]], 0.98,
                       "pgrx at ingress / ifstats"),
               verdict([r["prerouting_vs_ifstats"] for r in rows[:-1]], 0.98,
                       "pgrx at PRE_ROUTING / ifstats"),
               verdict([r["every_vs_ifstats"] for r in rows[:-1]], 0.98,
                       "pgrx at ingress, every packet's latency / ifstats"),
               f"noise floor: ifstats against itself a round apart, {low:.3f}..{high:.3f} "
               "(95 % interval of the geometric mean)",
           ])
    print(means)


def test_latency_percentiles_over_repeated_runs(forwarding, rx_counter, record):
    """The same paced run ``REPEATS`` times over the router: each run's p50..max, and how far
    each percentile moves between runs (its spread relative to its median)."""
    counter = rx_counter(forwarding, "kmod", drop=True)
    config = forwarding.config(count=LATENCY_COUNT, pkt_size=60, ratep=LATENCY_PACE)
    rows = []
    for repeat in range(REPEATS):
        counter.reset()
        result = forwarding.run(config)
        count = counter.settled(result.sent)
        assert count.latency is not None and count.latency.samples == result.sent
        rows.append({"run": repeat + 1, "samples": count.latency.samples,
                     **{f"{k}_us": v for k, v in count.latency.percentiles().items()}})
    keys = [k for k in rows[0] if k.endswith("_us")]
    spread = {}
    for key in keys:
        values = [r[key] for r in rows]
        median = statistics.median(values)
        spread[key] = (max(values) - min(values)) / median if median else 0.0
    rows.append({"run": "spread", "samples": "", **spread})
    record("8. pgrx", f"latency percentiles: {REPEATS} runs of {LATENCY_COUNT:,} x 64 B frames "
           f"through the forwarding router at {LATENCY_PACE:,} pps, every packet's latency "
           "from pgrx", rows, [
               "spread = (max - min) / median of a percentile over the runs: how far one run's "
               "figure may be from another's on an unchanged setup (what a latency "
               "baseline's rounds spread by: the rounds a comparison needs to settle its "
               "threshold, 10 % for lat_p50_us and 25 % for lat_p99_us by default)",
               f"paced at {LATENCY_PACE:,} pps: each sample includes up to one gap "
               f"({1e6 / LATENCY_PACE:,.0f} µs) of pktgen's own wait (README: Latency)",
           ])
    assert all(r["p50_us"] <= r["p99_us"] <= r["max_us"] for r in rows[:-1])
