"""Where a host drops frames: a link's drop and error counters (the kernel's, and its driver's
as ``ethtool -S`` shows them, through pyroute2) and the CPUs' receive backlog
(``/proc/net/softnet_stat``). Snapshots before and after a run say where its loss happened."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from . import netlink, seam

# the kernel's own counters (IFLA_STATS64) that count frames a link lost
LINK_KEYS = ("rx_dropped", "rx_missed_errors", "rx_fifo_errors", "rx_over_errors",
             "rx_errors", "tx_dropped", "tx_errors", "tx_fifo_errors")
TX_PACKETS = "tx_packets"  # beside them: what the link transmitted, against pktgen's sent
# a driver's statistics (ethtool -S) that count lost frames, by their names
DRIVER_NAMES = re.compile(r"drop|miss|no_?buf|fifo|err|discard|full|timeout|busy|overrun",
                          re.IGNORECASE)


def link_drops(ifnames: Iterable[str], netns: str | None = None) -> dict[str, dict[str, int]]:
    """Each of ``ifnames``' drop and error counters now, read in one visit to ``netns``: the
    kernel's (``rx_missed_errors``, ...), its driver's whose names say they count losses
    (``ethtool:rx_queue_0_drops``), and the frames it transmitted (``tx_packets``). A link
    not there (gone with its namespace) is left out."""
    wanted = set(ifnames)

    def read() -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with netlink.IPRoute() as ipr:
            links = ipr.get_links()
        for link in links:
            name = link.get_attr("IFLA_IFNAME")
            if name not in wanted:
                continue
            stats = link.get_attr("IFLA_STATS64") or {}
            counters = {key: int(stats.get(key, 0)) for key in (*LINK_KEYS, TX_PACKETS)}
            counters.update({f"ethtool:{key}": value for key, value in _driver(name).items()})
            out[name] = counters
        return out

    return seam.on(netns).call(read)


def _driver(ifname: str) -> dict[str, int]:
    """The driver's statistics (``ethtool -S``) whose names say they count lost frames."""
    try:
        ethtool = netlink.IoctlEthtool(ifname)
    except OSError:
        return {}
    try:
        named = ethtool.get_statistics()
    except Exception:  # noqa: BLE001 - no ethtool statistics (a dummy, a driver without)
        return {}
    finally:
        ethtool.close()
    return {name: int(value) for name, value in named if DRIVER_NAMES.search(name)}


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
