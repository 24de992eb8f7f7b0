"""Another machine's clock against this one's: its CLOCK_MONOTONIC (the clock of pktgen's
started/stopped stamps) read over the channel, NTP's way. Of several round trips the quickest
gives the offset (there minus here, at the trip's middle) and its uncertainty (half that round
trip): a reading there happened between the send and the reply, so the true offset lies
within it. Machines' monotonic clocks run at their own rates, so an offset is good for the
minutes around its measurement, not for a day."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import seam

SAMPLES = 8


@dataclass(frozen=True)
class ClockOffset:
    offset_ns: int  # that machine's CLOCK_MONOTONIC minus this one's
    uncertainty_ns: int  # the offset is right within +- this

    def here_ns(self, there_ns: int) -> int:
        """A CLOCK_MONOTONIC reading there, on this machine's clock."""
        return there_ns - self.offset_ns

    def __str__(self) -> str:
        return f"{self.offset_ns / 1e6:+.3f} ms +- {self.uncertainty_ns / 1e6:.3f} ms"


def measure(call: Callable, samples: int = SAMPLES,
            read: Callable[[], int] = time.monotonic_ns) -> ClockOffset:
    """``call(fn)`` runs ``fn`` there (an SshMachine's call); ``read`` is the clock, read
    there and here alike (``time.time_ns``: CLOCK_REALTIME, pktgen's packet stamps)."""
    best: tuple[int, int] | None = None
    for _ in range(samples):
        t0 = read()
        there = call(read)
        t1 = read()
        if best is None or t1 - t0 < best[1]:
            best = (there - (t0 + t1) // 2, t1 - t0)
    return ClockOffset(best[0], (best[1] + 1) // 2)


def realtime_between(sink: str | None, generator: str | None) -> ClockOffset | None:
    """The sink machine's CLOCK_REALTIME minus the generator machine's (machines by their
    --pktgen-host names, None: this one): what a one-way latency from pktgen's stamp to pgrx's
    reading carries besides the path. None when both are one machine (one clock)."""
    if sink == generator:
        return None
    ends = [measure(seam.on(None, name).call, read=time.time_ns) if name is not None
            else ClockOffset(0, 0) for name in (sink, generator)]
    return ClockOffset(ends[0].offset_ns - ends[1].offset_ns,
                       ends[0].uncertainty_ns + ends[1].uncertainty_ns)
