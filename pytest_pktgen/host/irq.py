"""IRQ affinity: pin a NIC's interrupts to one CPU, check where they landed, restore exactly.

The paper's Section 5: the CPU that drives a NIC should also take its interrupts (CPU:NIC 1:1).
Masks are read from and written to /proc/irq/N/smp_affinity as the kernel prints them, so the
restore writes back the very text that was read, and reads it back to prove it. The masks found
are in this process's ledger (:mod:`pytest_pktgen.host.ledger`) while pinned: a process killed
with SIGKILL leaves them for the next session's cleaner, a lost SSH host's agent restores them.
"""

from __future__ import annotations

from pathlib import Path

from .ledger import ledger
from .netdev import read_interrupts

PROC_IRQ = Path("/proc/irq")


def read_mask(irq: int) -> str:
    return (PROC_IRQ / str(irq) / "smp_affinity").read_text().strip()


def effective_cpus(irq: int) -> int:
    """The CPUs the IRQ is really routed to now, as a bitmask (applied at its next interrupt
    after an affinity change)."""
    path = PROC_IRQ / str(irq) / "effective_affinity"
    return int(path.read_text().strip().replace(",", ""), 16)


def cpu_mask(cpu: int) -> str:
    """smp_affinity text for one CPU: hex, in 32-bit groups separated by commas."""
    value = f"{1 << cpu:x}"
    groups = [value[max(0, i - 8):i] for i in range(len(value), 0, -8)]
    return ",".join(reversed(groups))


def _write_mask(irq: int, mask: str) -> None:
    (PROC_IRQ / str(irq) / "smp_affinity").write_text(mask + "\n")


def _same_mask(a: str, b: str) -> bool:
    return int(a.replace(",", ""), 16) == int(b.replace(",", ""), 16)


def restore_masks(saved: dict[int, str]) -> dict[int, tuple[str, str]]:
    """Write every saved mask back and read it back: those that differ, (saved, now)."""
    wrong = {}
    for irq, mask in saved.items():
        _write_mask(irq, mask)
        if not _same_mask(read_mask(irq), mask):
            wrong[irq] = (mask, read_mask(irq))
    return wrong


class IrqPinning:
    """IRQs pinned to ``cpu``; :meth:`share_on_cpu` says where they fired since a snapshot."""

    def __init__(self, irqs: list[int], cpu: int):
        if not irqs:
            raise ValueError("no IRQs to pin")
        self.irqs = irqs
        self.cpu = cpu
        self.saved = {irq: read_mask(irq) for irq in irqs}
        self._restored = False
        # an IRQ another pinning of this process holds is listed with its first mask already
        self._listed = [irq for irq in irqs if not ledger().holds("irqs", str(irq))]
        for irq in self._listed:
            ledger().add("irqs", str(irq), self.saved[irq])
        try:
            for irq in irqs:
                _write_mask(irq, cpu_mask(cpu))
                if not _same_mask(read_mask(irq), cpu_mask(cpu)):
                    raise RuntimeError(f"IRQ {irq} did not take affinity {cpu_mask(cpu)}: "
                                       f"reads {read_mask(irq)}")
        except BaseException:
            self.restore()
            raise
        self.baseline = self.snapshot()

    def snapshot(self) -> dict[int, list[int]]:
        counts = read_interrupts()
        return {irq: counts[irq][0] for irq in self.irqs}

    def fired(self, since: dict[int, list[int]] | None = None) -> tuple[int, int]:
        """(interrupts on the pinned CPU, interrupts in all) since ``since`` (or pinning)."""
        since = since or self.baseline
        now = self.snapshot()
        on_cpu = total = 0
        for irq in self.irqs:
            deltas = [b - a for a, b in zip(since[irq], now[irq], strict=True)]
            on_cpu += deltas[self.cpu]
            total += sum(deltas)
        return on_cpu, total

    def share_on_cpu(self, since: dict[int, list[int]] | None = None) -> float:
        on_cpu, total = self.fired(since)
        return on_cpu / total if total else 1.0

    def restore(self) -> None:
        """Write every saved mask back and read it back; raise if any differs (idempotent)."""
        if self._restored:
            return
        self._restored = True
        wrong = restore_masks(self.saved)
        for irq in self._listed:
            if irq not in wrong:  # one that did not take stays listed for the next cleaner
                ledger().drop("irqs", str(irq))
        if wrong:
            raise RuntimeError(f"IRQ affinity not restored (irq: (saved, now)): {wrong}")

    close = restore  # what an SSH host's agent calls on what it keeps when its controller goes
