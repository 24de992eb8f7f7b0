"""One measurement as the reports show it: a typed row, built from a test's rounds, gated by
:mod:`~pytest_pktgen.measurement.gates`, written by :mod:`~pytest_pktgen.measurement.report`
through :meth:`Row.as_dict` (the columns of results.csv and results.json, in their order).

Units are the reports' (:data:`~pytest_pktgen.measurement.report.UNITS`): ``frame`` with the
FCS, ``pkt_size`` without; ``offered = sent + errors``; ``loss = offered - received``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..host.clock import ClockOffset
from ..host.cpu import CpuTimes
from ..lab.latency import NAMES, Latency, column
from ..lab.losses import split, verdict
from ..lab.rx import RxCount, StreamAccount, account
from ..pktgen.params import frame_of, pkt_size_of
from ..run.runner import RunResult
from .point import AXES, AXIS_COLUMNS, Point

L1_OVERHEAD = 20  # preamble 7 + SFD 1 + inter-frame gap 12 bytes


def key_of(test: str, label: str | None) -> str:
    """A measurement's key in baselines and reports: the test's node id and the label."""
    return f"{test}#{label}" if label else test


# the CPU cost's columns (Row.cpu_cost), also attributes of a row
CPU_COLUMNS = ("cpu_pktgen_ns", "cpu_softirq_ns", "pktgen_busy", "net_tx_softirqs",
               "net_rx_softirqs")
# the latency columns (Row.latency_us), also attributes of a row
LATENCY_COLUMNS = (*(column(name) for name in NAMES), "lat_avg_us", "lat_samples", "lat_every")
# beside them where the latency was measured across two machines (Row.clock)
CLOCK_COLUMNS = ("lat_clock_offset_us", "lat_clock_uncertainty_us")


def extra_of(point: Point) -> str:
    """A sweep point's parameters beyond the axes, as JSON ("" if none)."""
    extra = {k: v for k, v in point.axes().items() if k not in AXIS_COLUMNS}
    return json.dumps(extra, sort_keys=True) if extra else ""


def point_key_of(point: Point) -> tuple:
    """A sweep point's coordinates, the same for every test measured (or searched) there."""
    return tuple(point.axes().get(k) for k in AXES) + (extra_of(point),)


def _accounts(rounds: Sequence[RunResult], counts: Sequence[RxCount]) -> dict:
    """Each pktgen device's account (:func:`~pytest_pktgen.lab.rx.account`) over the rounds
    whose counter saw streams (pgrx); empty where none did."""
    out: dict[str, StreamAccount] = {}
    for run, count in zip(rounds, counts, strict=False):
        if not count.streams:
            continue
        for name, status in run.devices.items():
            got = account(count.streams, status.src_mac, status.udp_src_ports, status.sofar,
                          status.repeat)
            out[name] = out[name] + got if name in out else got
    return out


# a round's own figures in Row.per_round (and results.json's per_round)
ROUND_COLUMNS = ("pps", "mbps", "offered", "sent", "received", "loss_ratio",
                 *(column(name) for name in NAMES), "lat_samples")


def _round_figures(run: RunResult, frame: int, frame_sent: int, received: int | None,
                   latency: Latency | None) -> dict:
    """One round's figures (:data:`ROUND_COLUMNS`): pps and Mb/s as the row's medians take
    them, what was offered, sent and received, its loss ratio and latency percentiles (None
    where not counted)."""
    mbps = run.pps * pkt_size_of(frame_sent) * 8 / 1e6 if frame_sent > frame else run.bps / 1e6
    out = {"pps": float(run.pps), "mbps": mbps, "offered": run.offered, "sent": run.sent,
           "received": received,
           "loss_ratio": (run.offered - received) / run.offered
           if received is not None and run.offered else None}
    pct = latency.percentiles() if latency is not None and latency.samples else {}
    out.update({column(name): pct.get(name) for name in NAMES})
    out["lat_samples"] = latency.samples if latency is not None else None
    return out


def _average(sizes: dict[int, int], otherwise: float) -> float:
    """The average frame of ``sizes`` (frame -> count), or ``otherwise`` if none was counted."""
    total = sum(sizes.values())
    return sum(size * count for size, count in sizes.items()) / total if total else otherwise


@dataclass
class Row:
    """One measurement: where (test, label, sweep point), pktgen's figures (medians over the
    rounds, totals), what the sink counted, and the gates' verdicts (filled in after)."""

    test: str  # the test's node id
    name: str = ""  # the test function: one table per name
    label: str | None = None
    point: Point = field(default_factory=Point)
    rounds: int = 1
    pps: float = 0.0  # median over the rounds
    pps_min: float = 0.0
    pps_max: float = 0.0
    frame_sent: int = 0  # the frame pktgen really sent (larger when its headers did not fit)
    # IMIX: frames of each size (on the wire, with the FCS) over every round and device, as
    # pktgen counts them: the offered (those the driver refused too)
    sizes: dict[int, int] = field(default_factory=dict)
    mbps: float = 0.0  # without FCS, of the frame sent
    l1_mbps: float = 0.0  # with FCS, preamble and gap
    offered: int = 0  # sent + errors, over every round
    sent: int = 0  # accepted by the driver (pkts-sofar)
    pktgen_s: float = 0.0  # pktgen's own elapsed time, over every round
    wall_s: float = 0.0
    received: int | None = None  # counted at the sink; None: nothing counted
    rx_backend: str | None = None
    sink: str = ""  # what the sink did with the frames (NetnsTopology.sink_mode)
    device: dict[str, str] = field(default_factory=dict)  # the tx link: name, driver, ...
    latency: Latency | None = None  # every round's samples together, where counted (kmod)
    # the drop and error counters that moved over the rounds (tx link, router, sink, backlog)
    drops: dict[str, int] = field(default_factory=dict)
    # what the tx link counted as transmitted over the rounds, beside pktgen's sent (None:
    # not read); other traffic on it counts too
    tx_link_packets: int | None = None
    # per pktgen device (dev@N), its packets as pgrx's streams saw them, over the rounds
    streams: dict[str, StreamAccount] = field(default_factory=dict)
    untracked: int = 0  # packets of streams beyond pgrx's limit: not in ``streams``
    # what the rounds cost the CPUs: pktgen's threads' run time, softirq time and counts
    cpu: CpuTimes | None = None
    # what pktgen's pacing adds to each latency sample at most: it stamps a packet, then waits
    # for its send time (its delay, one inter-packet gap per thread); 0: not paced
    pacing_wait_us: float = 0.0
    # latency across two machines: the sink's clock minus the generator's, in every sample
    # (None: one machine, one clock)
    clock: ClockOffset | None = None
    # every measured round's own figures (ROUND_COLUMNS), in order: what a comparison's
    # statistics need (the medians above are for reading)
    per_round: list[dict] = field(default_factory=list)
    gate: str = ""  # "ok", "FAIL" or "" (nothing gates it)
    ratio: float | None = None  # pps against a relative gate's reference
    # against a baseline, the worst verdict of its metrics (compare.VERDICTS), or "none" (not
    # in it); None: no baseline
    baseline: str | None = None

    @classmethod
    def of(cls, test: str, name: str, point: Point, label: str | None,
           rounds: Sequence[RunResult], received: Sequence[int] | None = None,
           rx_backend: str | None = None, device: dict[str, str] | None = None,
           sink: str = "", latency: Latency | None = None,
           drops: dict[str, int] | None = None, cpu: CpuTimes | None = None,
           counts: Sequence[RxCount] = (), clock: ClockOffset | None = None) -> Row:
        """The row of ``rounds`` measured at ``point``; ``received`` per round, if counted;
        ``latency``: the rounds' samples together, if measured; ``counts``: what the receive
        counter saw each round (pgrx's streams give the per-device account)."""
        pps = [float(r.pps) for r in rounds]
        median = statistics.median(pps)
        # the frame pktgen really sent: larger than the point's when its headers (IPv6, tags,
        # labels, its own 16 bytes) did not fit; then Mb/s count what was sent, not what was
        # asked (sizes that vary, imix: no single frame to name; pktgen's own bps count what
        # it sent)
        statuses = [s for r in rounds for s in r.devices.values()]
        fixed = all(s.fixed_size for s in statuses)
        frame_sent = max((s.frame_sent for s in statuses), default=point.frame) if fixed \
            else point.frame
        mbps = median * pkt_size_of(frame_sent) * 8 / 1e6 if frame_sent > point.frame \
            else float(statistics.median(r.bps / 1e6 for r in rounds))
        sizes: dict[int, int] = {}
        for status in statuses:
            for size, count in status.imix_counts.items():
                sizes[frame_of(size)] = sizes.get(frame_of(size), 0) + count
        sizes = dict(sorted(sizes.items()))
        dropped, tx_link = split(drops or {})
        per_round = [_round_figures(r, point.frame, frame_sent, received[n] if received is not
                                    None else None, counts[n].latency if n < len(counts)
                                    else None) for n, r in enumerate(rounds)]
        return cls(
            test=test, name=name, label=label, point=point, rounds=len(rounds),
            pps=median, pps_min=min(pps), pps_max=max(pps), frame_sent=frame_sent,
            mbps=mbps, sizes=sizes,
            l1_mbps=median * (_average(sizes, frame_sent) + L1_OVERHEAD) * 8 / 1e6,
            offered=sum(r.offered for r in rounds), sent=sum(r.sent for r in rounds),
            pktgen_s=sum(max(s.result.elapsed_us for s in r.devices.values())
                         for r in rounds) / 1e6,
            wall_s=sum(r.wall_s for r in rounds),
            received=sum(received) if received is not None else None,
            rx_backend=rx_backend, sink=sink, device=dict(device or {}), latency=latency,
            drops=dropped, tx_link_packets=tx_link, cpu=cpu, streams=_accounts(rounds, counts),
            untracked=sum(c.other.get("streams_overflow", 0) for c in counts),
            pacing_wait_us=max((int(s.params.get("delay", 0)) / 1e3 for s in statuses),
                               default=0.0),
            clock=clock if latency is not None else None, per_round=per_round)

    @property
    def frame(self) -> int:
        return self.point.frame

    @property
    def avg_frame(self) -> float:
        """The average frame (with the FCS): an IMIX's by what pktgen offered of each size,
        else the frame sent."""
        return _average(self.sizes, self.frame_sent)

    @property
    def errors(self) -> int:
        """Frames the driver refused: lost, and counted in ``loss``."""
        return self.offered - self.sent

    @property
    def pps_spread(self) -> float:
        """(max - min) / median of the rounds' pps."""
        return (self.pps_max - self.pps_min) / self.pps if self.pps else 0.0

    @property
    def loss(self) -> int | None:
        return None if self.received is None else self.offered - self.received

    @property
    def loss_ratio(self) -> float | None:
        """None when nothing was counted, or nothing offered: never a perfect 0 %."""
        if self.received is None or not self.offered:
            return None
        return (self.offered - self.received) / self.offered

    @property
    def key(self) -> str:
        """Its key in baselines (:func:`key_of`)."""
        return key_of(self.test, self.label)

    @property
    def point_key(self) -> tuple:
        """Its sweep point's coordinates, the same for every test measured there."""
        return point_key_of(self.point)

    @property
    def extra(self) -> str:
        """The point's parameters beyond the axes, as JSON ("" if none)."""
        return extra_of(self.point)

    @property
    def where(self) -> str:
        """Where the loss happened, one line (empty when nothing was lost or dropped)."""
        lost = self.loss if self.loss is not None else self.errors
        unsent = self.sent - self.tx_link_packets if self.tx_link_packets is not None else 0
        return verdict(lost, self.errors, self.drops, unsent)

    def latency_us(self) -> dict[str, float | None]:
        """The latency columns: p50, p90, p99, p99.9, max and avg in µs, the samples (one
        sequence number in ``lat_every``) and the pacing's wait beside them (empty where no
        latency was measured)."""
        if self.latency is None:
            return {}
        pct = self.latency.percentiles()
        out = {column(name): value for name, value in pct.items()}
        out["lat_avg_us"] = self.latency.avg_us if self.latency.samples else None
        out["lat_samples"] = self.latency.samples
        out["lat_every"] = self.latency.every  # one sequence number in N sampled
        out["pacing_wait_us"] = self.pacing_wait_us
        if self.clock is not None:  # measured across machines: their clocks' offset beside
            out["lat_clock_offset_us"] = self.clock.offset_ns / 1e3
            out["lat_clock_uncertainty_us"] = self.clock.uncertainty_ns / 1e3
        return out

    def stream_columns(self) -> dict[str, int | str]:
        """Per-device accounting where pgrx saw streams: lost, duplicate and late sequence
        numbers in all (``stream_lost``, ...), each device's (``streams``), and packets pgrx
        could not give to a stream (``streams_untracked``, beyond its limit)."""
        if not self.streams and not self.untracked:
            return {}
        total = sum(self.streams.values(), StreamAccount())
        return {"stream_lost": total.lost, "stream_duplicates": total.duplicates,
                "stream_late": total.late, "streams_untracked": self.untracked,
                "streams": self.stream_summary()}

    def stream_summary(self) -> str:
        """Each device's account, one clause each: ``eth1@0: 5,000 sent, lost 0; ...``."""
        parts = []
        for name, acc in self.streams.items():
            text = f"{name}: {acc.sent:,} sent, lost {acc.lost:,}"
            text += "".join(f", {what} {n:,}" for what, n in
                            (("duplicates", acc.duplicates), ("late", acc.late)) if n)
            parts.append(text)
        if self.untracked:
            parts.append(f"{self.untracked:,} packets beyond pgrx's streams, not accounted")
        return "; ".join(parts)

    def cpu_cost(self) -> dict[str, float | int | None]:
        """What a packet cost the CPUs: pktgen's threads' ns per packet offered
        (``cpu_pktgen_ns``, their own sending and the softirqs they ran), the CPUs' softirq ns
        per packet (``cpu_softirq_ns``, tick-sampled), how busy pktgen's threads were over its
        elapsed time (``pktgen_busy``, 1.0 = always running), the network softirqs raised."""
        if self.cpu is None:
            return {}
        offered, threads = self.offered, max(self.point.threads, 1)
        busy = self.cpu.pktgen_ns / (self.pktgen_s * 1e9 * threads) if self.pktgen_s else None
        return {"cpu_pktgen_ns": self.cpu.pktgen_ns / offered if offered else None,
                "cpu_softirq_ns": self.cpu.softirq_ns / offered if offered else None,
                "pktgen_busy": busy, "net_tx_softirqs": self.cpu.net_tx,
                "net_rx_softirqs": self.cpu.net_rx}

    def __getattr__(self, name: str):
        """A latency column as an attribute (``row.lat_p99_us``: gates read them so); None
        where no latency was measured."""
        if name in LATENCY_COLUMNS or name in CLOCK_COLUMNS:
            return self.latency_us().get(name)
        if name in CPU_COLUMNS:
            return self.cpu_cost().get(name)
        raise AttributeError(name)

    def as_dict(self) -> dict:
        """The row's columns, in the reports' order: results.csv and results.json."""
        axes = self.point.axes()
        out = {
            "test": self.test, "name": self.name, "id": self.point.id, "label": self.label,
            **{k: axes[k] for k in AXIS_COLUMNS}, "extra": self.extra,
            "rounds": self.rounds, "pps": self.pps, "pps_min": self.pps_min,
            "pps_max": self.pps_max, "pps_spread": self.pps_spread,
            "frame_sent": self.frame_sent, "avg_frame": self.avg_frame,
            "sizes": " ".join(f"{size}:{count}" for size, count in self.sizes.items()),
            "mbps": self.mbps, "l1_mbps": self.l1_mbps,
            "offered": self.offered, "sent": self.sent, "errors": self.errors,
            "pktgen_s": self.pktgen_s, "wall_s": self.wall_s,
            "tx_link_packets": self.tx_link_packets, "received": self.received,
            "loss": self.loss, "loss_ratio": self.loss_ratio, "rx_backend": self.rx_backend,
            "sink": self.sink, **{f"dev_{k}": v for k, v in self.device.items()},
            **self.latency_us(), **self.cpu_cost(), **self.stream_columns(),
            "where": self.where, "gate": self.gate,
        }
        if self.ratio is not None:
            out["ratio"] = self.ratio
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out

    def __getitem__(self, column: str):
        """A report column by name (``measured.row["errors"]``), as in results.csv."""
        return self.as_dict()[column]
