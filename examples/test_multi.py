"""The 2x4+2 script scaled to the lab: every device on every pktgen thread (dev@thread), each
paced, for a fixed time; here two dummy devices' worth of load from one dummy on two threads.
pktgen's own per-device figures are the result: no pktgen_bench, the runner directly.
"""

from __future__ import annotations

from pytest_pktgen.pktgen.setups import Target, multi

RATEP = 20_000
SECONDS = 2.0


def test_every_device_on_every_thread(dummy):
    targets = [Target(dummy.tx[0].ifname, dummy.next_hops[0].mac)]
    threads = min(2, len(dummy.pktgen.threads()))
    result = dummy.run(multi(targets, threads=threads, ratep=RATEP), duration=SECONDS)
    assert len(result.devices) == threads
    for name, status in result.devices.items():
        # each paced device sent, and never faster than its rate: pktgen sends the n-th packet
        # no earlier than (n - 1) / ratep after the start (give or take 0.5 % for a VM's clock;
        # how far below it a busy machine falls is no property of pktgen's)
        sofar = status.result.sofar
        assert sofar >= 2, (name, status.result)
        assert status.result.pps <= RATEP * sofar / (sofar - 1) * 1.005, (name, status.result)
