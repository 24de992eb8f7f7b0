"""2c. VM start-up: how long a user waits for the VM lab. The first benchmark of the session
sends one packet and notes how long after the guest kernel booted (its /proc/uptime) and after
`make bench` started the VM (PKTGEN_BENCH_T0, the host's clock when QEMU was launched; the
guest's clock follows the host's) that was. Then two child pytest sessions in the guest, as a
user's would run after the boot: two trivial tests, and one packet on a dummy.

Targets (under TCG): a trivial session under 30 s and the first packet under 40 s, each
counted from the guest kernel's start: the boot up to the guest's script (virtme-ng-init says
when, in the kernel log) plus the child session's wall time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

TRIVIAL = "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n"
ONE_PACKET = ("def test_first_packet(dummy):\n"
              "    assert dummy.run(dummy.config(count=1, pkt_size=60)).sent == 1\n")


def boot_seconds() -> float | None:
    """The guest kernel's uptime when virtme-ng-init started the script (None if not said)."""
    log = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    found = re.search(r"\[\s*([\d.]+)\] virtme-ng-init: starting script", log)
    return float(found.group(1)) if found else None


# As the plugin started before pyroute2 was imported on first use: its netlink parts first.
EAGER = ("import sys, pytest_pktgen.netlink as n; n.IPRoute; n.netns; n.NetlinkError; "
         "import pytest; sys.exit(pytest.main(sys.argv[1:]))")


def child_session(tmp_path: Path, name: str, text: str, eager: bool = False) -> float:
    """Wall seconds of a pytest session in a directory of its own (no conftest, no ini)."""
    here = tmp_path / f"{name}{'-eager' if eager else ''}{len(list(tmp_path.iterdir()))}"
    here.mkdir()
    (here / "pytest.ini").write_text("[pytest]\n")
    (here / f"test_{name}.py").write_text(text)
    started = time.monotonic()
    start = ["-c", EAGER] if eager else ["-m", "pytest"]
    proc = subprocess.run([sys.executable, *start, "-q", "-p", "no:cacheprovider", str(here)],
                          cwd=here, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return took


def test_boot_to_first_packet(dummy, record, tmp_path):
    result = dummy.run(dummy.config(count=1, pkt_size=60))
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert result.sent == 1
    rows = [{"from": "guest kernel start to this session's first packet (/proc/uptime)",
             "seconds": uptime}]
    t0 = os.environ.get("PKTGEN_BENCH_T0")
    if t0:
        rows.append({"from": "host: the VM's launch to this session's first packet "
                             "(PKTGEN_BENCH_T0)", "seconds": time.time() - float(t0)})
    boot = boot_seconds()
    # A/B against the start-up before (pyroute2 imported with the plugin), B/A again: the
    # mean of two each, as this machine's speed under TCG drifts
    runs: dict[tuple[str, bool], list[float]] = {}
    for name, text in (("trivial", TRIVIAL), ("packet", ONE_PACKET)):
        for eager in (False, True, True, False):
            runs.setdefault((name, eager), []).append(child_session(tmp_path, name, text, eager))
    mean = {key: sum(v) / len(v) for key, v in runs.items()}
    trivial, first = mean[("trivial", False)], mean[("packet", False)]
    rows += [{"from": "guest kernel start to its script (boot)", "seconds": boot or 0.0},
             {"from": "a child session of two trivial tests", "seconds": trivial},
             {"from": "the same, pyroute2 imported at the start (as before)",
              "seconds": mean[("trivial", True)]},
             {"from": "a child session sending one packet on a dummy", "seconds": first},
             {"from": "the same, pyroute2 imported at the start (as before)",
              "seconds": mean[("packet", True)]}]
    notes = ["this session's figures include the module load, the feature probe and one "
             "dummy topology; under TCG Python's own start is most of it"]
    if boot is not None:
        notes += [f"a trivial session: boot + session = {boot + trivial:.1f} s (target under "
                  f"30 s: {'met' if boot + trivial < 30 else 'NOT met'})",
                  f"first packet: boot + session = {boot + first:.1f} s (target under 40 s: "
                  f"{'met' if boot + first < 40 else 'NOT met'})"]
    record("2. Overhead", "VM start-up: boot, a trivial session, the first packet", rows, notes)
