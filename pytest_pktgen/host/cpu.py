"""What a run costs a host's CPUs: the run time of pktgen's threads (``kpktgend_N``, from
``/proc/<pid>/schedstat``, in ns), the time the CPUs spent in softirqs (``/proc/stat``, in the
kernel's ticks: sampled, so coarse over a short run) and the network softirqs raised
(``/proc/softirqs``). Snapshots before and after a run; their difference per packet is the
paper's "CPU cost" of a setup.

pktgen's threads run the softirqs their own sends raise (a veth delivers inside the sender's
bottom half), so their time includes that receive work; the softirq time is every CPU's,
whoever ran it. The threads are the host's, all of them (each network namespace has its
own, idle unless it sends).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, fields
from pathlib import Path

from . import seam

PROC = Path("/proc")
_comms: dict[int, str] = {}  # pid -> comm, read once (kernel threads keep theirs)


@dataclass(frozen=True)
class CpuTimes:
    """Counters at one moment, or the difference of two (:meth:`__sub__`)."""

    pktgen_ns: int = 0  # pktgen's threads' run time
    softirq_ns: int = 0  # every CPU's time in softirqs (tick-sampled)
    net_tx: int = 0  # NET_TX softirqs raised, every CPU
    net_rx: int = 0  # NET_RX softirqs raised, every CPU

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def __add__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def pktgen_pids(proc: Path = PROC) -> list[int]:
    """The pids of pktgen's kernel threads (``kpktgend_N``, every namespace's)."""
    out = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid not in _comms:
            try:
                _comms[pid] = (proc / entry / "comm").read_text().strip()
            except OSError:
                continue  # gone since the listing
        if _comms[pid].startswith("kpktgend_"):
            out.append(pid)
    return out


def softirq_ticks(stat: str) -> int:
    """The softirq ticks of ``/proc/stat``'s all-CPU line (its 7th number)."""
    for line in stat.splitlines():
        if line.startswith("cpu "):
            return int(line.split()[7])
    raise ValueError("/proc/stat without its 'cpu' line")


def net_softirqs(text: str) -> tuple[int, int]:
    """(NET_TX, NET_RX) raised, summed over the CPUs of ``/proc/softirqs``."""
    counts = {}
    for line in text.splitlines():
        name, _, rest = line.strip().partition(":")
        if name in ("NET_TX", "NET_RX"):
            counts[name] = sum(int(x) for x in rest.split())
    return counts.get("NET_TX", 0), counts.get("NET_RX", 0)


def _now(proc: Path = PROC) -> CpuTimes:
    runtime = 0
    for pid in pktgen_pids(proc):
        try:
            runtime += int((proc / str(pid) / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            _comms.pop(pid, None)  # gone (its namespace deleted): its time left with it
    tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    tx, rx = net_softirqs((proc / "softirqs").read_text())
    return CpuTimes(runtime, softirq_ticks((proc / "stat").read_text()) * tick_ns, tx, rx)


def cpuinfo() -> str:
    """This machine's /proc/cpuinfo ("" where there is none)."""
    path = Path("/proc/cpuinfo")
    return path.read_text() if path.exists() else ""


def model(info: str) -> str:
    """The CPU's model name in a /proc/cpuinfo text (else what platform says)."""
    return next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), platform.processor())


def snapshot(netns: str | None = None, host: str | None = None) -> CpuTimes:
    """The counters now, on the machine (``host``; None: this one) that runs ``netns``'s
    pktgen."""
    return seam.on(netns, host).call(_now)
