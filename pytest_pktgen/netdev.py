"""Network devices as pktgen's tests see them: by MAC, their counters, their IRQs (pyroute2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute


@dataclass(frozen=True)
class LinkStats:
    rx_packets: int
    tx_packets: int
    rx_bytes: int
    tx_bytes: int
    rx_dropped: int
    tx_dropped: int

    def __sub__(self, other: LinkStats) -> LinkStats:
        return LinkStats(*(a - b for a, b in zip(_astuple(self), _astuple(other), strict=True)))


def _astuple(stats: LinkStats) -> tuple:
    return (stats.rx_packets, stats.tx_packets, stats.rx_bytes, stats.tx_bytes,
            stats.rx_dropped, stats.tx_dropped)


def _one_link(ipr: IPRoute, ifname: str):
    links = ipr.get_links(ifname=ifname)
    if not links:
        raise LookupError(f"no network device {ifname!r}")
    return links[0]


def link_stats(ifname: str, ipr: IPRoute | None = None) -> LinkStats:
    """The kernel's 64-bit interface counters of ``ifname``."""
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        stats = _one_link(ipr, ifname).get_attr("IFLA_STATS64")
    finally:
        if own:
            ipr.close()
    return LinkStats(stats["rx_packets"], stats["tx_packets"], stats["rx_bytes"],
                     stats["tx_bytes"], stats["rx_dropped"], stats["tx_dropped"])


def ifname_by_mac(mac: str, ipr: IPRoute | None = None) -> str:
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        for link in ipr.get_links():
            if (link.get_attr("IFLA_ADDRESS") or "").lower() == mac.lower():
                return link.get_attr("IFLA_IFNAME")
    finally:
        if own:
            ipr.close()
    raise LookupError(f"no network device with MAC {mac}")


def set_state(ifname: str, state: str, ipr: IPRoute | None = None) -> bool:
    """Set a link administratively up or down; True if that changed anything."""
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        link = _one_link(ipr, ifname)
        was_up = bool(link["flags"] & 1)  # IFF_UP
        if was_up == (state == "up"):
            return False
        ipr.link("set", index=link["index"], state=state)
        return True
    finally:
        if own:
            ipr.close()


def quiet(ifname: str) -> None:
    """Keep the kernel from sending its own frames on a test link (IPv6 DAD, RS, MLD), so
    that interface counters count pktgen's frames only."""
    Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6").write_text("1\n")


def link_info(ifname: str, ipr: IPRoute | None = None) -> dict:
    """MAC, operational state, carrier, MTU and driver kind of a link."""
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        link = _one_link(ipr, ifname)
        info = link.get_attr("IFLA_LINKINFO")
        return {
            "ifname": ifname,
            "index": link["index"],
            "mac": link.get_attr("IFLA_ADDRESS"),
            "operstate": link.get_attr("IFLA_OPERSTATE"),
            "carrier": link.get_attr("IFLA_CARRIER"),
            "mtu": link.get_attr("IFLA_MTU"),
            "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
            "up": bool(link["flags"] & 1),  # IFF_UP
            "type": link["ifi_type"],  # ARPHRD_*
        }
    finally:
        if own:
            ipr.close()


# --- interrupts -------------------------------------------------------------------------

def read_interrupts(path: str = "/proc/interrupts") -> dict[int, tuple[list[int], str]]:
    """Numbered IRQs of /proc/interrupts: {irq: ([count per CPU], name)}."""
    lines = Path(path).read_text().splitlines()
    ncpu = len(lines[0].split())
    out = {}
    for line in lines[1:]:
        head, _, rest = line.partition(":")
        if not head.strip().isdigit():
            continue
        fields = rest.split()
        counts = [int(f) for f in fields[:ncpu] if f.isdigit()]
        out[int(head)] = (counts, " ".join(fields[ncpu:]))
    return out


def nic_irqs(ifname: str) -> list[int]:
    """IRQ numbers of a NIC's MSI/MSI-X vectors, from sysfs (virtio NICs: their virtioN queues)."""
    device = Path("/sys/class/net", ifname, "device").resolve()
    for candidate in (device, device.parent):
        msi = candidate / "msi_irqs"
        if msi.is_dir():
            irqs = sorted(int(p.name) for p in msi.iterdir() if p.name.isdigit())
            if device.name.startswith("virtio"):
                # A virtio PCI function's MSI vectors include its config IRQ; keep the queues.
                names = read_interrupts()
                pattern = re.compile(rf"\b{re.escape(device.name)}-(input|output|virtqueues)")
                irqs = [i for i in irqs if i in names and pattern.search(names[i][1])]
            return irqs
    return []
