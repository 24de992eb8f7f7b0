"""3. Receive counting at pktgen's full rate over a veth: the share of the frames each backend
counts, and what it costs pktgen in pps against a run with only the interface counters."""

from __future__ import annotations

import os

from pytest_pktgen.lab.sniff import Sniffer

COUNT = 300_000


def _patched_kernel() -> bool:
    return os.path.exists("/proc/sys/net/ipv4/pktgen_rcv")


def test_receive_backends(veth, rx_counter, record):
    """Each backend as a benchmark uses it: the ones that count after tc ingress (nft, pgrx,
    the patched kernel) take the sink's discard over and drop; ifstats, tc and the sniffer see
    the frames before the discard, which drops them. Last, no drop at all: the sink's stack."""
    config = veth.config(count=COUNT, pkt_size=60)
    base = rx_counter(veth, "ifstats")
    backends = ["ifstats", "tc", "nft", "kmod", "sniffer", "stack"]
    if _patched_kernel():
        backends = ["ifstats", "patched", "stack"]  # the patched kernel's session: its counter
    rows = []
    baseline_pps = None
    for backend in backends:
        veth.discard_at_sink()
        if backend == "sniffer":
            sniff = Sniffer(veth.sink.ifname, veth.sink.netns, limit=COUNT)
            sniff.start()
            try:
                result = veth.run(config, rx=[base])
            finally:
                frames = sniff.stop(quiet=1.0)
            counted = len(frames)
        elif backend in ("ifstats", "stack"):
            if backend == "stack":
                veth.lift_discard()
            result = veth.run(config, rx=[base])
            counted = result.received["ifstats"].packets
        else:
            counter = rx_counter(veth, backend, **({} if backend == "tc" else {"drop": True}))
            result = veth.run(config, rx=[base, counter])
            counted = result.received[backend].packets
            counter.close()
        if baseline_pps is None:
            baseline_pps = result.pps
        rows.append({"backend": backend, "sink": veth.sink_mode, "sent": result.sent,
                     "counted": counted, "share": counted / result.sent, "pps": result.pps,
                     "pps_vs_ifstats": result.pps / baseline_pps})
    assert rows[0]["share"] == 1.0
    record("3. Receive counting", f"{COUNT:,} x 64 B frames at full rate over veth, one backend "
           "at a time", rows, [
               "share = frames the backend counted / frames pktgen sent; pps_vs_ifstats = pktgen's "
               "pps with the backend in place / with only the interface counters (and the sink's "
               "tc discard)",
               "sink = what the sink did with the frames: tc-drop (its discard), <backend>-drop "
               "(the backend counted and dropped them), stack (up to UDP port 9, no drop)",
               "the scapy sniffer is a sample: it captures what one Python thread keeps up with",
           ] + ([] if _patched_kernel() else
                ["the patched kernel counter is measured in the patched kernel's session"]))
