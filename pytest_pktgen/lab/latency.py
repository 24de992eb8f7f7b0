"""One-way latency as pgrx measures it: pktgen packets', in HdrHistogram's layout.

pgrx (kmod/) stamps nothing: pktgen writes its send time (µs) into each packet's header and
pgrx takes the difference at ingress, one sample per new sequence number (or one number in N,
:func:`sampled`), into buckets exact below 2^``sub_bits`` µs and within 1/2^(``sub_bits``-1)
above. That is HdrHistogram's layout at 2 significant figures, so the buckets become an
:class:`hdrh.histogram.HdrHistogram` without losing anything (PyPI ``hdrhistogram``: merging
rounds, percentiles, a portable encoding).

Both ends read the same clock only on one host (the VM lab's namespaces, a crossover cable on
one machine): across hosts a latency needs synchronised clocks and is not reported here.

A sample is a clock read and a histogram update at the sink, for each packet: at high rates
that costs the sink pps (2 % of the VM lab's veth rate: bench/RESULTS.md section 8). A
measurement samples every packet up to :data:`SAMPLES_PER_S` packets per second and one in a
power of two above it, one in :data:`UNPACED_EVERY` when it is not paced (:func:`every_for`);
reports say which (``lat_every``). The numbers sampled are chosen by a hash of the sequence
number alone, so the choice cannot follow a packet's arrival time or latency.

pktgen stamps a packet when it builds it, then waits for its send time: a paced run (``ratep``
or ``delay``) adds that wait, up to one inter-packet gap per thread, to every sample
(:func:`pacing_wait_us`); the reports carry it next to the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..errors import PktgenConfigError
from ..host import clock
from ..host.clock import ClockOffset
from ..pktgen.check import NEVER, expected_params

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}
NAMES = (*PERCENTILES, "max")  # what a latency gate or column names


def column(name: str) -> str:
    """A percentile's report column (and row attribute): ``p99.9`` -> ``lat_p999_us``."""
    return f"lat_{name.replace('.', '')}_us"
HIGHEST_US = 2**30  # pgrx's last bucket: 18 minutes
EVERY_MAX = 1 << 20  # pgrx's sparsest latency sample: 1 sequence number in 2^20
HASH = 0x9E3779B1  # pgrx's hash of a sequence number (Fibonacci's: 2^32 / the golden ratio)
# "auto": every packet a sample up to this many packets per second (a clock read each costs a
# CPU well under 1 % at this rate on a real host), one in a power of two above it
SAMPLES_PER_S = 32_768
# "auto" when the rate is not known (unpaced): a 10G line's 14.88 Mpps of 64-byte frames gives
# 232,500 samples/s, and the VM lab's 150 kpps 2,300
UNPACED_EVERY = 64
SIGNIFICANT = 2  # HdrHistogram's significant figures: 256 sub-buckets, pgrx's sub_bits 8


@dataclass(frozen=True)
class Latency:
    """Latency samples of a run (or merged runs), µs: their count, min/max/sum and the
    buckets (lowest value -> count); ``future`` samples had a send time after arrival (clocks
    not in step: not counted). ``every``: one sequence number in ``every`` was sampled (1: each
    one; runs merged with different ones: the largest)."""

    samples: int = 0
    min_us: int = 0
    max_us: int = 0
    sum_us: int = 0
    future: int = 0
    buckets: dict[int, int] = field(default_factory=dict)
    every: int = 1

    @property
    def avg_us(self) -> float:
        return self.sum_us / self.samples if self.samples else 0.0

    def histogram(self):
        """The samples as an HdrHistogram (2 significant figures, up to pgrx's last bucket)."""
        from hdrh.histogram import HdrHistogram

        hist = HdrHistogram(1, HIGHEST_US, SIGNIFICANT)
        for low, count in self.buckets.items():
            hist.record_value(min(low, HIGHEST_US), count)
        return hist

    @cached_property
    def _percentiles(self) -> dict[str, float | None]:
        """Computed once: the histogram is built from every bucket (rows and gates ask often)."""
        if not self.samples:
            return {**dict.fromkeys(PERCENTILES), "max": None}
        hist = self.histogram()
        out: dict[str, float | None] = {
            name: float(min(hist.get_value_at_percentile(p), self.max_us))
            for name, p in PERCENTILES.items()}
        out["max"] = float(self.max_us)
        return out

    def percentiles(self) -> dict[str, float | None]:
        """p50, p90, p99, p99.9 (the bucket's highest value: exact below 256 µs, within
        0.8 % above) and the exact max, µs; None for each without samples."""
        return dict(self._percentiles)

    def encoded(self) -> str:
        """The histogram in HdrHistogram's compressed base64 form (for results.json; any
        HdrHistogram library decodes it)."""
        return self.histogram().encode().decode()

    def __add__(self, other: Latency) -> Latency:
        """Both runs' samples together."""
        if not other.samples:
            return self
        if not self.samples:
            return other
        merged = dict(self.buckets)
        for low, count in other.buckets.items():
            merged[low] = merged.get(low, 0) + count
        return Latency(self.samples + other.samples, min(self.min_us, other.min_us),
                       max(self.max_us, other.max_us), self.sum_us + other.sum_us,
                       self.future + other.future, merged, max(self.every, other.every))


def merged(latencies) -> Latency | None:
    """The rounds' latencies as one (None if no round had any)."""
    present = [lat for lat in latencies if lat is not None]
    if not present:
        return None
    total = Latency()
    for lat in present:
        total = total + lat
    return total


def parse_buckets(text: str) -> tuple[int, dict[int, int]]:
    """pgrx's ``latency_buckets SUB_BITS LOW:COUNT ...`` (after the key): the sub-bucket bits
    and the buckets."""
    first, *pairs = text.split()
    buckets = {}
    for pair in pairs:
        low, _, count = pair.partition(":")
        buckets[int(low)] = int(count)
    return int(first), buckets


def sampled(seq: int, every: int) -> bool:
    """Whether pgrx samples pktgen's sequence number ``seq`` for latency at one in ``every``
    (pgrx's rule: the number's 32-bit Fibonacci hash below 2^32 / ``every``)."""
    return every > 0 and (seq * HASH) & 0xFFFFFFFF < (1 << 32) // every


def check_every(value: object) -> int | str:
    """A latency sample setting: ``"auto"`` or one sequence number in N, 0 (none) to
    :data:`EVERY_MAX`; raises PktgenConfigError otherwise."""
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)
                           and 0 <= value <= EVERY_MAX):
        return value
    raise PktgenConfigError("latency_every", value, "auto, or a latency sample of one "
                            f"sequence number in N: 0 (none), 1 (every one) to {EVERY_MAX}")


def every_for(setting: int | str, configs) -> int:
    """The sample pgrx takes (one sequence number in N) for a run of pktgen's ``configs``:
    ``setting`` itself, or for ``"auto"`` every number up to :data:`SAMPLES_PER_S` packets
    per second in all, one in the power of two that keeps it there above, and
    :data:`UNPACED_EVERY` when a device is not paced."""
    if setting != "auto":
        return check_every(setting)
    # the gap pktgen keeps, ns, as the kernel shows it (ratep and rate become one)
    delays = [int(expected_params(c).get("delay", 0)) for c in configs]
    if not delays or not all(0 < d < NEVER for d in delays):
        return UNPACED_EVERY
    pps = sum(1e9 / d for d in delays)
    every = 1
    while pps / every > SAMPLES_PER_S:
        every *= 2
    return every


def pacing_wait_us(ratep_per_thread: float | None) -> float:
    """What a paced pktgen thread adds to each latency sample at most: it stamps a packet,
    then waits for its send time, one inter-packet gap (0 when not paced)."""
    return 1e6 / ratep_per_thread if ratep_per_thread else 0.0


def clock_between(topology) -> ClockOffset | None:
    """What a latency measured on ``topology`` carries besides its path: the sink machine's
    CLOCK_REALTIME minus the generator machine's (pktgen stamps on one, pgrx reads on the
    other); None when both are one machine, or nothing is received."""
    if topology.sink is None:
        return None
    return clock.realtime_between(topology.sink.host, getattr(topology, "generator_host", None))
