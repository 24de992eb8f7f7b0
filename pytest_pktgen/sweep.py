"""Sweeps and run settings from the ``pktgen`` and ``pktgen_sweep`` markers and the options.

Precedence of a setting: the test's marker, then the command line, then the ini file, then the
default (a test that says ``clone_skb=0`` means it). Frame sizes are bytes on the wire with the
FCS (see :mod:`pytest_pktgen.measurement.point`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import pytest

from . import options
from .errors import PktgenConfigError
from .lab.latency import check_every
from .lab.rx import BACKENDS
from .measurement.point import AXES, RUN_KEYS, Point, Settings, check_value
from .measurement.search import SearchSettings
from .pktgen.params import imix_pairs
from .run.runner import check_ends


def bad(message: str):
    """A marker or sweep the plugin cannot run: the test is reported with this sentence alone
    (no traceback), before anything reaches the kernel."""
    raise pytest.fail.Exception(message, pytrace=False) from None


def settings_for(config: pytest.Config, marker_kwargs: Mapping[str, object],
                 where: str) -> Settings:
    """Options (CLI > ini > default) overlaid with the test's ``pktgen`` marker."""
    duration = options.get(config, "pktgen_duration")
    base = Settings(
        count=0 if duration else options.get(config, "pktgen_count"), duration=duration,
        rounds=options.get(config, "pktgen_repeats"), warmup=options.get(config, "pktgen_warmup"),
        rx=options.get(config, "pktgen_rx"),
        latency_every=options.get(config, "pktgen_latency_every"),
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


SEARCH_KEYS = {"loss_ratios": "pktgen_loss_ratios", "relative_width": "pktgen_search_width",
               "trial_duration": "pktgen_trial_duration",
               "final_trial_duration": "pktgen_final_duration",
               "duration_sum": "pktgen_duration_sum", "exceed_ratio": "pktgen_exceed_ratio",
               "min_load": "pktgen_min_load", "max_load": "pktgen_max_load",
               "warmup": "pktgen_search_warmup"}


def search_settings_for(config: pytest.Config, marker_kwargs: Mapping[str, object],
                        where: str, **given) -> SearchSettings:
    """A throughput search's settings: the options, overlaid with the test's ``pktgen_search``
    marker, overlaid with what the test ``given`` the fixture; checked as MLRsearch would."""
    values = {key: options.get(config, option) for key, option in SEARCH_KEYS.items()}
    for source, kwargs in (("pktgen_search marker", marker_kwargs),
                           ("pktgen_search()", given)):
        unknown = sorted(set(kwargs) - set(SEARCH_KEYS))
        if unknown:
            bad(f"{where}: {source}: {', '.join(unknown)}: not a search setting; one of "
                f"{', '.join(SEARCH_KEYS)}")
        values.update(kwargs)
    values["loss_ratios"] = tuple(values["loss_ratios"])
    settings = SearchSettings(**values)
    try:
        settings.goals()
    except PktgenConfigError as err:
        bad(f"{where}: pktgen_search {err.param} {err.value!r}: {err.allowed}")
    return settings


def _check_settings(s: Settings, where: str) -> None:
    try:
        check_ends(s.count, s.duration)
    except PktgenConfigError as err:
        bad(f"{where}: count 0: {err.allowed}")
    if s.count and s.duration:
        bad(f"{where}: count {s.count} and duration {s.duration}: a round is "
                                "either a packet count or a number of seconds, not both")
    for name in ("rounds",):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            bad(f"{where}: {name} {value!r}: a whole number, 1 or more")
    if isinstance(s.warmup, bool) or not isinstance(s.warmup, int) or s.warmup < 0:
        bad(f"{where}: warmup {s.warmup!r}: a whole number, 0 or more")
    if s.rx not in BACKENDS and s.rx is not None:
        bad(f"{where}: rx {s.rx!r}: one of {', '.join(BACKENDS)}, or None")
    try:
        check_every(s.latency_every)
    except PktgenConfigError as err:
        bad(f"{where}: latency_every {s.latency_every!r}: {err.allowed}")


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
    imix = "imix" in axes or "imix" in fixed
    if imix and ("frame" in axes or "frame" in fixed):
        bad(f"{where}: frame and imix both: an IMIX sends its own frame sizes")
    if "frame" not in axes and "frame" not in fixed and not imix:
        axes = {"frame": list(options.get(config, "pktgen_sizes")), **axes}
    base = point_from_marker(config, fixed, where)
    points = []
    names = list(axes)
    for combo in itertools.product(*(axes[n] for n in names)):
        values = dict(zip(names, combo, strict=True))
        known = {n: values.pop(n, getattr(base, n)) for n in AXES}
        if "imix" in values:  # its smallest frame: pktgen draws IMIX sizes above pkt_size
            known["frame"] = min(frame for frame, _ in imix_pairs(values["imix"]))
        points.append(Point(**known, extra=tuple(values.items()), swept=tuple(names)))
    return points
