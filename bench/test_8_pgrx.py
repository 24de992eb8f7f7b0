"""8. pgrx: what counting every packet costs pktgen, at the sink device's netdev ingress (the
default: before the IP layer) and at PRE_ROUTING (after ip_rcv), side by side in one run
against counting with the interface counters only; and how stable its latency percentiles
are over repeated runs of one setup.
"""

from __future__ import annotations

import statistics

import pytest

from pytest_pktgen.lab.rx import IfStatsCounter, KmodCounter

pytestmark = pytest.mark.integration

COUNT = 300_000
ROUNDS = 9
REPEATS = 10
LATENCY_COUNT = 20_000
LATENCY_PACE = 2_000  # pps: paced, as latency is compared (README: Latency)
VARIANTS = ("ifstats", "prerouting", "ingress")


def test_pgrx_cost_at_ingress_and_at_prerouting(veth, pgrx, record):
    config = veth.config(count=COUNT, pkt_size=60)
    base = IfStatsCounter(veth.sink.ifname, veth.sink.netns)

    def run(variant: str) -> float:
        if variant == "ifstats":  # the sink's tc discard drops them; nothing else counts
            veth.discard_at_sink()
            result = veth.run(config, rx=[base])
        else:
            veth.lift_discard()
            counter = KmodCounter(veth.sink.ifname, veth.sink.netns, drop=True, hook=variant)
            try:
                assert counter.hook == variant, counter.hook_error
                counter.reset()
                result = veth.run(config, rx=[base])
                counted = counter.read()
            finally:
                counter.close()
            assert counted.packets == counted.dropped == result.sent, (variant, counted)
        assert result.received["ifstats"].packets == result.sent == COUNT
        return float(result.pps)

    rows = []
    try:
        run("ingress")  # a warm-up: the first run of a session is slower (bench 6's floor)
        for index in range(ROUNDS):
            order = VARIANTS[index % 3:] + VARIANTS[:index % 3]  # each goes first in turn
            pps = {variant: run(variant) for variant in order}
            rows.append({"round": index + 1, "order": "/".join(order),
                         **{f"{v}_pps": pps[v] for v in VARIANTS},
                         "prerouting_vs_ifstats": pps["prerouting"] / pps["ifstats"],
                         "ingress_vs_ifstats": pps["ingress"] / pps["ifstats"],
                         "ingress_vs_prerouting": pps["ingress"] / pps["prerouting"]})
    finally:
        veth.discard_at_sink()
    ratios = ("prerouting_vs_ifstats", "ingress_vs_ifstats", "ingress_vs_prerouting")
    medians = {k: statistics.median(r[k] for r in rows) for k in ratios}
    ifstats_runs = [r["ifstats_pps"] for r in rows]
    noise = (max(ifstats_runs) - min(ifstats_runs)) / statistics.median(ifstats_runs)
    rows.append({"round": "median", "order": "", **{f"{v}_pps": statistics.median(
        r[f"{v}_pps"] for r in rows) for v in VARIANTS}, **medians})
    met = "met" if medians["ingress_vs_ifstats"] >= 0.98 else "NOT met"
    record("8. pgrx", f"its cost: {COUNT:,} x 64 B frames over veth, counted and dropped by "
           f"pgrx at the sink's netdev ingress or at PRE_ROUTING, or by the interface counters "
           f"only, {ROUNDS} rounds, each variant first in turn", rows, [
               "ifstats = the sink's tc discard drops the frames, the interface counters count "
               "them; ingress = pgrx counts and drops every frame at the sink veth's netdev "
               "ingress (the default), prerouting = at PRE_ROUTING, after ip_rcv (as it did "
               "before)",
               f"pgrx at ingress / ifstats: {medians['ingress_vs_ifstats']:.3f} (target at "
               f"least 0.98: {met}); at PRE_ROUTING: {medians['prerouting_vs_ifstats']:.3f}",
               f"noise floor: the ifstats runs' own spread, (max - min) / median = {noise:.1%}",
           ])
    print(medians, f"noise {noise:.1%}")


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
               "figure may be from another's on an unchanged setup (the noise floor of a "
               "latency baseline: --pktgen-tolerance's 25 % for lat_p50_us, 50 % for "
               "lat_p99_us)",
               f"paced at {LATENCY_PACE:,} pps: each sample includes up to one gap "
               f"({1e6 / LATENCY_PACE:,.0f} µs) of pktgen's own wait (README: Latency)",
           ])
    assert all(r["p50_us"] <= r["p99_us"] <= r["max_us"] for r in rows[:-1])
