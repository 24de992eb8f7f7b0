"""Sweep points and run settings: what the ``pktgen`` and ``pktgen_sweep`` markers and the
options ask a measurement to send.

Sizes here are *frame* sizes, bytes on the wire with the 4-byte FCS, as the paper's 64-1500 B
table counts them; pktgen's ``pkt_size`` leaves the FCS out (``pkt_size = frame - 4``).
Precedence of a setting: the test's marker, then the command line, then the ini file, then the
default (a test that says ``clone_skb=0`` means it).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from . import options
from .errors import PktgenConfigError
from .params import FCS_LEN, PARAMS, _did_you_mean

AXES = ("frame", "clone_skb", "flows", "threads")
# N flows are N UDP source ports, FLOW_PORT_BASE to FLOW_PORT_BASE + N - 1, one packet each in
# turn: pktgen's next packet takes the next port of [udp_src_min, udp_src_max). (pktgen's own
# ``flows``/``flowlen`` keep only an IPv4 destination per flow: with one ``dst`` they send
# one flow whatever N says, and nothing per flow for IPv6.)
FLOW_PORT_BASE = 1024
FLOWS_MAX = 0xFFFF - FLOW_PORT_BASE  # udp_src_max, exclusive, is a port number too
RUN_KEYS = ("count", "duration", "rounds", "warmup", "rx", "flags", "ipv6")


def bad(message: str):
    """A marker or sweep the plugin cannot run: the test is reported with this sentence alone
    (no traceback), before anything reaches the kernel."""
    raise pytest.fail.Exception(message, pytrace=False) from None


def _frame(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            options.FRAME_MIN <= value <= options.FRAME_MAX):
        raise PktgenConfigError("frame", value, "a frame size in bytes on the wire with the FCS, "
                                f"{options.FRAME_MIN} to {options.FRAME_MAX} "
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


def check_value(name: str, value: object) -> object:
    """A sweep or marker value checked as pktgen (or the sweep axis) would take it."""
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
        return self.frame - FCS_LEN

    @property
    def id(self) -> str:
        values = {"frame": self.frame, "clone_skb": self.clone_skb, "flows": self.flows,
                  "threads": self.threads, **dict(self.extra)}
        parts = []
        for name in self.swept:
            value = values[name]
            parts.append({"frame": f"{value}B", "clone_skb": f"clone{value}",
                          "flows": f"flows{value}", "threads": f"{value}thr"}.get(
                              name, f"{name}{value}"))
        return "-".join(parts)

    def axes(self) -> dict[str, object]:
        """The point's coordinates, for reports: the four axes and the extra parameters."""
        return {"frame": self.frame, "pkt_size": self.pkt_size, "clone_skb": self.clone_skb,
                "flows": self.flows, "threads": self.threads, **dict(self.extra)}

    def params(self) -> dict:
        """pktgen parameters of one device at this point (count comes later)."""
        params: dict = {"pkt_size": self.pkt_size, "clone_skb": self.clone_skb}
        if self.flows:  # sequential, not UDPSRC_RND: exactly N 5-tuples, each every N packets
            params.update(udp_src_min=FLOW_PORT_BASE, udp_src_max=FLOW_PORT_BASE + self.flows)
        params.update(dict(self.extra))
        return params


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


def settings_for(config: pytest.Config, marker_kwargs: Mapping[str, object],
                 where: str) -> Settings:
    """Options (CLI > ini > default) overlaid with the test's ``pktgen`` marker."""
    duration = options.get(config, "pktgen_duration")
    base = Settings(
        count=0 if duration else options.get(config, "pktgen_count"), duration=duration,
        rounds=options.get(config, "pktgen_repeats"), warmup=options.get(config, "pktgen_warmup"),
        rx=options.get(config, "pktgen_rx"),
        params=dict(options.get(config, "pktgen_param")),
    )
    fields = {}
    params = dict(base.params)
    for name, value in marker_kwargs.items():
        if name in RUN_KEYS:
            fields[name] = value
        elif name in AXES:
            continue  # a fixed point: see point_from_marker
        else:
            try:
                check_value(name, value)
            except PktgenConfigError as err:
                bad(f"{where}: {err}")
            params[name] = value
    if "duration" in fields and "count" not in fields:
        fields["count"] = 0
    elif "count" in fields and "duration" not in fields:
        fields["duration"] = None
    settings = Settings(**{**base.__dict__, **fields, "params": params,
                           "flags": tuple(fields.get("flags", ()))})
    _check_settings(settings, where)
    return settings


def _check_settings(s: Settings, where: str) -> None:
    if s.count == 0 and not s.duration:
        bad(f"{where}: count 0 sends forever: give a duration (seconds per "
                                "round) with it, or a count above 0")
    if s.count and s.duration:
        bad(f"{where}: count {s.count} and duration {s.duration}: a round is "
                                "either a packet count or a number of seconds, not both")
    for name in ("rounds",):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            bad(f"{where}: {name} {value!r}: a whole number, 1 or more")
    if isinstance(s.warmup, bool) or not isinstance(s.warmup, int) or s.warmup < 0:
        bad(f"{where}: warmup {s.warmup!r}: a whole number, 0 or more")
    from .rx import BACKENDS

    if s.rx not in BACKENDS and s.rx is not None:
        bad(f"{where}: rx {s.rx!r}: one of {', '.join(BACKENDS)}, or None")


def point_from_marker(config: pytest.Config, marker_kwargs: Mapping[str, object],
                      where: str) -> Point:
    """The one point of a test without a sweep: the marker's axes, else the options."""
    values = {"frame": options.get(config, "pktgen_sizes")[0],
              "clone_skb": options.get(config, "pktgen_clone_skb"),
              "threads": options.get(config, "pktgen_threads")}
    for name in AXES:
        if name in marker_kwargs:
            values[name] = marker_kwargs[name]
    try:
        for name, value in values.items():
            check_value(name, value)
    except PktgenConfigError as err:
        bad(f"{where}: {err}")
    return Point(**values, swept=())


def sweep_points(config: pytest.Config, sweep: Mapping[str, object], fixed: Mapping[str, object],
                 where: str) -> list[Point]:
    """Every point of a ``pktgen_sweep`` marker: the product of its axes, in the given order.
    Axes it leaves out come from the ``pktgen`` marker, then the options; frame sizes from
    ``--pktgen-sizes`` unless the sweep or the marker names them."""
    axes: dict[str, list] = {}
    for name, values in sweep.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            bad(f"{where}: pktgen_sweep({name}=...) takes a non-empty list of "
                                    f"values, not {values!r}")
        try:
            axes[name] = [check_value(name, value) for value in values]
        except PktgenConfigError as err:
            bad(f"{where}: {err}")
        if len(set(map(repr, values))) != len(values):
            bad(f"{where}: pktgen_sweep({name}={list(values)!r}) names a "
                                    "value twice")
    if "frame" not in axes and "frame" not in fixed:
        axes = {"frame": list(options.get(config, "pktgen_sizes")), **axes}
    base = point_from_marker(config, fixed, where)
    points = []
    names = list(axes)
    for combo in itertools.product(*(axes[n] for n in names)):
        values = dict(zip(names, combo, strict=True))
        known = {n: values.pop(n, getattr(base, n)) for n in AXES}
        points.append(Point(**known, extra=tuple(values.items()), swept=tuple(names)))
    return points
