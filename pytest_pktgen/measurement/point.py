"""A sweep point and a measurement's settings: what a measurement sends, checked as pktgen
(or the sweep axis) would take it. The pytest surface (:mod:`pytest_pktgen.sweep`) builds them
from markers and options.

Sizes here are *frame* sizes, bytes on the wire with the 4-byte FCS, as the paper's 64-1500 B
table counts them; pktgen's ``pkt_size`` leaves the FCS out (``pkt_size = frame - 4``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import PktgenConfigError
from ..lab.topology import thread_configs
from ..pktgen.params import (
    FRAME_MAX,
    FRAME_MIN,
    PARAMS,
    _did_you_mean,
    imix_pairs,
    imix_weights_of,
    pkt_size_of,
)

# N flows are N UDP source ports, FLOW_PORT_BASE to FLOW_PORT_BASE + N - 1, one packet each in
# turn: pktgen's next packet takes the next port of [udp_src_min, udp_src_max). (pktgen's own
# ``flows``/``flowlen`` keep only an IPv4 destination per flow: with one ``dst`` they send
# one flow whatever N says, and nothing per flow for IPv6.)
FLOW_PORT_BASE = 1024
FLOWS_MAX = 0xFFFF - FLOW_PORT_BASE  # udp_src_max, exclusive, is a port number too
RUN_KEYS = ("count", "duration", "rounds", "warmup", "rx", "flags", "ipv6", "latency_every")



def _frame(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            FRAME_MIN <= value <= FRAME_MAX):
        raise PktgenConfigError("frame", value, "a frame size in bytes on the wire with the FCS, "
                                f"{FRAME_MIN} to {FRAME_MAX} "
                                "(pkt_size = frame - 4)")
    return value


def _threads(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PktgenConfigError("threads", value, "a number of pktgen threads, 1 or more")
    return value


def _flows(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= FLOWS_MAX:
        raise PktgenConfigError("flows", value, f"a number of flows, 0 (off) to {FLOWS_MAX}: "
                                f"flows are UDP source ports from {FLOW_PORT_BASE}")
    return value


def imix_id(value: object) -> str:
    """A point id's part for an ``imix`` value: ``imix-simple``, ``imix64x7+1518x1``."""
    if isinstance(value, str):
        return f"imix-{value}"
    return "imix" + "+".join(f"{frame}x{weight}" for frame, weight in imix_pairs(value))


def check_value(name: str, value: object) -> object:
    """A sweep or marker value checked as pktgen (or the sweep axis) would take it."""
    if name == "imix":
        imix_pairs(value)
        return value if isinstance(value, str) else tuple(tuple(pair) for pair in value)
    if name == "imix_weights":
        raise PktgenConfigError("imix_weights", value, "imix=... instead: a profile's name or "
                                "(frame, weight) pairs, frames on the wire with the FCS")
    if name == "frame":
        return _frame(value)
    if name == "threads":
        return _threads(value)
    if name == "flows":
        return _flows(value)
    if name == "pkt_size":
        raise PktgenConfigError("pkt_size", value, "frame=... instead: sweeps and markers take "
                                "frame sizes on the wire (pkt_size = frame - 4)")
    if name not in PARAMS:
        raise PktgenConfigError(name, value, "a pktgen device parameter or one of "
                                f"{', '.join(AXES)}" + _did_you_mean(name))
    PARAMS[name].check(name, value)
    return value


@dataclass(frozen=True)
class Point:
    """One point of a sweep: frame size, clone_skb, flows, threads and any other parameters.
    ``swept`` names the axes that vary, which are the ones its id shows."""

    frame: int = 64
    clone_skb: int = 0
    flows: int = 0
    threads: int = 1
    extra: tuple[tuple[str, object], ...] = ()
    swept: tuple[str, ...] = ("frame",)

    @property
    def pkt_size(self) -> int:
        return pkt_size_of(self.frame)

    @property
    def imix(self) -> tuple[tuple[int, int], ...] | None:
        """The point's IMIX as (frame, weight) pairs, if it sends one."""
        value = dict(self.extra).get("imix")
        return None if value is None else imix_pairs(value)

    @property
    def id(self) -> str:
        values = {**{name: getattr(self, name) for name in AXES}, **dict(self.extra)}
        return "-".join(imix_id(values[name]) if name == "imix" else
                        ID_FORMAT.get(name, name + "{}").format(values[name])
                        for name in self.swept)

    def axes(self) -> dict[str, object]:
        """The point's coordinates, for reports: frame and pkt_size, the other axes, the
        extra parameters."""
        return {"frame": self.frame, "pkt_size": self.pkt_size,
                **{name: getattr(self, name) for name in AXES[1:]}, **dict(self.extra)}

    def params(self) -> dict:
        """pktgen parameters of one device at this point (count comes later)."""
        params: dict = {"pkt_size": self.pkt_size, "clone_skb": self.clone_skb}
        if self.flows:  # sequential, not UDPSRC_RND: exactly N 5-tuples, each every N packets
            params.update(udp_src_min=FLOW_PORT_BASE, udp_src_max=FLOW_PORT_BASE + self.flows)
        params.update(dict(self.extra))
        return imix_weights_of(params)


# The sweep axes are Point's own fields (frame first), the rest of a point's parameters extra
AXES = tuple(f.name for f in fields(Point) if f.name not in ("extra", "swept"))
# the point's columns in reports: the axes with pkt_size beside the frame
AXIS_COLUMNS = (AXES[0], "pkt_size", *AXES[1:])
ID_FORMAT = {"frame": "{}B", "clone_skb": "clone{}", "flows": "flows{}", "threads": "{}thr"}


@dataclass(frozen=True)
class Settings:
    """How a test measures: packets per round (or seconds), rounds, the receive counter, and
    pktgen parameters/flags that apply to every point."""

    count: int = 1_000_000
    duration: float | None = None
    rounds: int = 3
    warmup: int = 0
    rx: str = "ifstats"
    params: dict = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    ipv6: bool = False
    # pgrx's latency sample: one sequence number in N, or "auto" by the run's rate
    # (:func:`pytest_pktgen.lab.latency.every_for`)
    latency_every: int | str = "auto"


def point_configs(topology, index: int, point: Point, settings: Settings, params: dict,
                  count: int, threads: int | None = None) -> list:
    """What a point sends on ``topology``'s tx link ``index``: ``count`` packets on the point's
    threads (``threads`` where a caller needs more: a search keeps each thread's pace), the
    point's parameters (frame, clone_skb, flows, imix, any swept one) over the settings'
    (every point's), ``params`` over both. The one way from a point to pktgen's configs, for
    a measurement's rounds and a search's trials alike."""
    params = dict(params)
    point_params = point.params()
    if {"min_pkt_size", "max_pkt_size"} & params.keys():  # a size range instead of the frame
        point_params.pop("pkt_size", None)
    flags = tuple(dict.fromkeys((*settings.flags, *params.pop("flags", ()))))
    ipv6 = params.pop("ipv6", settings.ipv6)
    merged = {**settings.params, **point_params, **params}
    return thread_configs(topology, index, threads or point.threads, count, ipv6=ipv6,
                          flags=flags, **merged)
