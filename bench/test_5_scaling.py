"""5. Scaling: pktgen threads 1..N (N = this machine's CPUs, one kpktgend each) driving one
device as dev@0..dev@N-1: a dummy (TX only) and the lab's crossover NIC."""

from __future__ import annotations

COUNT = 500_000  # per thread


def _scale(topology, clone_skb: int) -> list[dict]:
    threads = topology.pktgen.threads()
    rows = []
    for n in range(1, len(threads) + 1):
        configs = [topology.config(thread=t, suffix=f"@{t}", count=COUNT, pkt_size=60,
                                   clone_skb=clone_skb) for t in range(n)]
        result = topology.run(configs)
        rows.append({"threads": n, "pps": result.pps, "sent": result.sent})
    for row in rows:
        row["vs_1_thread"] = row["pps"] / rows[0]["pps"]
    return rows


def test_scaling_dummy(dummy, record):
    rows = _scale(dummy, clone_skb=0)
    record("5. Scaling", f"dummy, {COUNT:,} x 64 B per thread, clone_skb 0", rows,
           ["under TCG the vCPUs share this host's cores: scaling stops at its core count"])


def test_scaling_crossover(crossover, record):
    rows = _scale(crossover, clone_skb=0)
    record("5. Scaling", f"crossover (virtio-net), {COUNT:,} x 64 B per thread, clone_skb 0",
           rows, ["the virtio NIC has one TX queue: threads contend for its lock"])
