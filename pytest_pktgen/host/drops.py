"""Where a host drops frames: a link's drop and error counters (the kernel's, and its driver's
as ``ethtool -S`` shows them, through pyroute2) and the CPUs' receive backlog
(``/proc/net/softnet_stat``). Snapshots before and after a run say where its loss happened."""

from __future__ import annotations

import re
from pathlib import Path

from . import netlink, seam
from .netdev import route

# the kernel's own counters (IFLA_STATS64) that count frames a link lost
LINK_KEYS = ("rx_dropped", "rx_missed_errors", "rx_fifo_errors", "rx_over_errors",
             "rx_errors", "tx_dropped", "tx_errors", "tx_fifo_errors")
# a driver's statistics (ethtool -S) that count lost frames, by their names
DRIVER_NAMES = re.compile(r"drop|miss|no_?buf|fifo|err|discard|full|timeout|busy|overrun",
                          re.IGNORECASE)


def link_drops(ifname: str, netns: str | None = None) -> dict[str, int]:
    """``ifname``'s drop and error counters now: the kernel's (``rx_missed_errors``, ...) and
    its driver's whose names say they count losses (``ethtool:rx_queue_0_drops``)."""
    with route(None, netns) as ipr:
        links = ipr.link("get", ifname=ifname)
        stats = links[0].get_attr("IFLA_STATS64") or {}
    out = {key: int(stats.get(key, 0)) for key in LINK_KEYS}

    def driver() -> list[tuple[str, int]]:
        return netlink.IoctlEthtool(ifname).get_statistics()

    try:
        named = seam.on(netns).call(driver)
    except Exception:  # noqa: BLE001 - no ethtool statistics (a dummy, a driver without)
        named = []
    out.update({f"ethtool:{name}": int(value) for name, value in named
                if DRIVER_NAMES.search(name)})
    return out


def softnet(path: str = "/proc/net/softnet_stat") -> dict[str, int]:
    """The CPUs' receive backlog, summed over CPUs: frames dropped because a backlog was full
    (``softnet_dropped``) and NAPI polls cut short by their budget (``softnet_time_squeeze``).
    One for the whole host, whatever the namespace."""
    dropped = squeezed = 0
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3:
            dropped += int(fields[1], 16)
            squeezed += int(fields[2], 16)
    return {"softnet_dropped": dropped, "softnet_time_squeeze": squeezed}
