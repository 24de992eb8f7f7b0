"""2c. VM boot to first packet: the first benchmark of the session sends one packet and notes
how long after the guest kernel booted (its /proc/uptime) and after `make bench` started the VM
(PKTGEN_BENCH_T0, the host's clock when QEMU was launched; the guest's clock follows the
host's) that was."""

from __future__ import annotations

import os
import time
from pathlib import Path


def test_boot_to_first_packet(dummy, record):
    result = dummy.run(dummy.config(count=1, pkt_size=60))
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert result.sent == 1
    rows = [{"from": "guest kernel start (/proc/uptime)", "seconds": uptime}]
    t0 = os.environ.get("PKTGEN_BENCH_T0")
    if t0:
        rows.append({"from": "host: the VM's launch (PKTGEN_BENCH_T0)",
                     "seconds": time.time() - float(t0)})
    record("2. Overhead", "VM boot to first packet", rows, [
        "includes the module load, the feature probe and one dummy topology; under TCG "
        "Python's own start is most of it"])
