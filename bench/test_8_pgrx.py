"""8. pgrx: what counting every packet costs pktgen, before and after its per-CPU rework
(one lock per namespace taken by every packet, then per-CPU counters and a lock per stream),
side by side in one run against counting with the interface counters only; and how stable
its latency percentiles are over repeated runs of one setup.

The module from before the rework is built from the repository's history (git) with kbuild
in the guest; the two are loaded in turn (they share a name).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest

from pytest_pktgen.lab import rx
from pytest_pktgen.lab.rx import IfStatsCounter, KmodCounter

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "d37ba53^"  # the last pgrx with one lock per namespace for every packet
COUNT = 300_000
PAIRS = 5
REPEATS = 10
LATENCY_COUNT = 20_000
LATENCY_PACE = 2_000  # pps: paced, as latency is compared (README: Latency)


@pytest.fixture(scope="module")
def pgrx_before(tmp_path_factory) -> Path:
    """pgrx.ko as it was before the per-CPU rework, built for the running kernel."""
    where = tmp_path_factory.mktemp("pgrx-before")
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:kmod/pgrx.c"],
                            capture_output=True, text=True)
    if source.returncode != 0:
        pytest.skip(f"pgrx before the rework: git show {BEFORE} failed (a clone with its "
                    f"history is needed): {source.stderr.strip()}")
    (where / "pgrx.c").write_text(source.stdout)
    shutil.copy(ROOT / "kmod" / "Makefile", where / "Makefile")
    built = subprocess.run(["make", "-C", str(where), f"KVER={os.uname().release}"],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return where / "pgrx.ko"


def _insmod(ko: Path) -> None:
    if rx.kmod_loaded():
        rx.unload_kmod()
    proc = subprocess.run([shutil.which("insmod") or "/sbin/insmod", str(ko)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_pgrx_cost_before_and_after_its_per_cpu_rework(veth, pktgen_module, pgrx_before,
                                                       record):
    after = rx.build_kmod(pktgen_module.kernel_release)
    config = veth.config(count=COUNT, pkt_size=60)
    base = IfStatsCounter(veth.sink.ifname, veth.sink.netns)

    def run(variant: str) -> float:
        if variant == "ifstats":  # the sink's tc discard drops them; nothing else counts
            veth.discard_at_sink()
            result = veth.run(config, rx=[base])
        else:
            _insmod(pgrx_before if variant == "before" else after)
            veth.lift_discard()
            counter = KmodCounter(veth.sink.ifname, veth.sink.netns, drop=True)
            try:
                result = veth.run(config, rx=[base])
                counted = int(re.search(r"^packets (\d+)$", counter.raw(), re.M).group(1))
            finally:
                counter.close()
                rx.unload_kmod()
            assert counted == result.sent, (variant, counted, result.sent)
        assert result.received["ifstats"].packets == result.sent == COUNT
        return float(result.pps)

    variants = ("ifstats", "before", "after")
    rows = []
    try:
        for pair in range(PAIRS):
            order = variants[pair % 3:] + variants[:pair % 3]  # each goes first in turn
            pps = {variant: run(variant) for variant in order}
            rows.append({"pair": pair + 1, "order": "/".join(order),
                         **{f"{v}_pps": pps[v] for v in variants},
                         "before_vs_ifstats": pps["before"] / pps["ifstats"],
                         "after_vs_ifstats": pps["after"] / pps["ifstats"],
                         "after_vs_before": pps["after"] / pps["before"]})
    finally:
        if rx.kmod_loaded():
            rx.unload_kmod()
        veth.discard_at_sink()
    medians = {k: statistics.median(r[k] for r in rows)
               for k in ("before_vs_ifstats", "after_vs_ifstats", "after_vs_before")}
    ifstats_runs = [r["ifstats_pps"] for r in rows]
    noise = (max(ifstats_runs) - min(ifstats_runs)) / statistics.median(ifstats_runs)
    rows.append({"pair": "median", "order": "", **{f"{v}_pps": statistics.median(
        r[f"{v}_pps"] for r in rows) for v in variants}, **medians})
    record("8. pgrx", f"its cost: {COUNT:,} x 64 B frames over veth, counted and dropped by "
           f"pgrx before and after its per-CPU rework, or by the interface counters only, "
           f"{PAIRS} rounds, each variant first in turn", rows, [
               "ifstats = the sink's tc discard drops the frames, the interface counters count "
               "them; before/after = pgrx counts (and drops) every frame at the sink's "
               f"ingress, as it was at {BEFORE} (one lock per namespace) and now (per CPU)",
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
