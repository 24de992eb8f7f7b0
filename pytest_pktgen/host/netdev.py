"""Network devices as pktgen's tests see them: by MAC, their counters, their IRQs (pyroute2)."""

from __future__ import annotations

import array
import fcntl
import re
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import netlink, seam


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


@contextmanager
def route(ipr: netlink.IPRoute | None = None,
          netns: str | None = None) -> Iterator[netlink.IPRoute]:
    """The given IPRoute, or a new one in ``netns`` (never creating it) closed afterwards."""
    if ipr is not None:
        yield ipr
        return
    with seam.on(netns).netlink() as own:
        yield own


def _one_link(ipr: netlink.IPRoute, ifname: str):
    links = ipr.get_links(ifname=ifname)
    if not links:
        raise LookupError(f"no network device {ifname!r}")
    return links[0]


def link_stats(ifname: str, ipr: netlink.IPRoute | None = None,
               netns: str | None = None) -> LinkStats:
    """The kernel's 64-bit interface counters of ``ifname``."""
    with route(ipr, netns) as ipr:
        stats = _one_link(ipr, ifname).get_attr("IFLA_STATS64")
    return LinkStats(stats["rx_packets"], stats["tx_packets"], stats["rx_bytes"],
                     stats["tx_bytes"], stats["rx_dropped"], stats["tx_dropped"])


def ifname_by_mac(mac: str, ipr: netlink.IPRoute | None = None, netns: str | None = None) -> str:
    with route(ipr, netns) as ipr:
        for link in ipr.get_links():
            if (link.get_attr("IFLA_ADDRESS") or "").lower() == mac.lower():
                return link.get_attr("IFLA_IFNAME")
    raise LookupError(f"no network device with MAC {mac}")


def set_state(ifname: str, state: str, ipr: netlink.IPRoute | None = None,
              netns: str | None = None) -> bool:
    """Set a link administratively up or down; True if that changed anything."""
    with route(ipr, netns) as ipr:
        link = _one_link(ipr, ifname)
        was_up = bool(link["flags"] & 1)  # IFF_UP
        if was_up == (state == "up"):
            return False
        ipr.link("set", index=link["index"], state=state)
        return True


def sysctl(key: str, value: str | int, netns: str | None = None) -> str:
    """Write a sysctl (``net/ipv4/ip_forward``) in ``netns``; return the value it had."""
    path = Path("/proc/sys") / key

    def swap() -> str:
        old = path.read_text().strip()
        path.write_text(f"{value}\n")
        return old

    return seam.on(netns).call(swap)


def quiet(ifname: str, netns: str | None = None, value: str | int = 1) -> str:
    """Keep the kernel from sending its own frames on a test link (IPv6 DAD, RS, MLD), so
    that interface counters count pktgen's frames only; returns the ``disable_ipv6`` it had
    (``value=`` that to undo)."""
    return sysctl(f"net/ipv6/conf/{ifname}/disable_ipv6", value, netns)


def link_info(ifname: str, ipr: netlink.IPRoute | None = None, netns: str | None = None) -> dict:
    """MAC, operational state, carrier, MTU, driver kind, IFF_UP and link type of a link."""
    with route(ipr, netns) as ipr:
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
            "tx_queues": link.get_attr("IFLA_NUM_TX_QUEUES"),
            # the device below it, a NIC's (none for a virtual link; kernels from 5.16)
            "parent": (link.get_attr("IFLA_PARENT_DEV_BUS_NAME"),
                       link.get_attr("IFLA_PARENT_DEV_NAME")),
        }


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


def nic_device(ifname: str, netns: str | None = None) -> Path:
    """The NIC's device in sysfs: stable while the link moves between namespaces. Found by the
    link's parent device (netlink, in the link's namespace): /sys/class/net shows the links of
    the namespace sysfs was mounted in, not the reader's (an SSH host's agent in a namespace
    of its own); by /sys/class/net on kernels before 5.16, which do not say."""
    bus, name = link_info(ifname, netns=netns)["parent"]
    if bus and name:
        return Path("/sys/bus", bus, "devices", name).resolve()
    return Path("/sys/class/net", ifname, "device").resolve()


def nic_irqs(ifname: str | None = None, device: Path | None = None) -> list[int]:
    """IRQ numbers of a NIC's MSI/MSI-X vectors, from sysfs (virtio NICs: their virtioN queues)."""
    device = device or nic_device(ifname)
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


# --- driver facts -----------------------------------------------------------------------
SIOCETHTOOL, ETHTOOL_GSET, ETHTOOL_GDRVINFO = 0x8946, 0x00000001, 0x00000003
_DRVINFO = struct.Struct("I32s32s32s32s32s12sIIIII")  # struct ethtool_drvinfo
# struct ethtool_cmd (the legacy ETHTOOL_GSET): cmd, supported, advertising, speed, duplex,
# port, phy_address, transceiver, autoneg, mdio_support, maxtxpkt, maxrxpkt, speed_hi, ...
_CMD = struct.Struct("IIIHBBBBBBIIHBBI8x")
SPEED_UNKNOWN = 0xFFFFFFFF


def _ethtool(ifname: str, request: bytes) -> bytes:
    """One SIOCETHTOOL ioctl on ``ifname`` in the caller's namespace: the filled-in struct."""
    holder = array.array("B", request)
    ifreq = struct.pack("16sP", ifname.encode(), holder.buffer_info()[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    return holder.tobytes()


def link_speed_mbps(ifname: str, netns: str | None = None) -> int | None:
    """The negotiated speed of a NIC on a bus, in Mb/s (``ethtool``'s Speed); None when the
    driver does not know it, or the link is virtual (a veth says 10000, and means nothing)."""
    def ask() -> int | None:
        fields = _CMD.unpack(_ethtool(ifname, _CMD.pack(ETHTOOL_GSET, *([0] * 15))))
        speed = fields[3] | fields[12] << 16
        return None if speed in (0, SPEED_UNKNOWN, 0xFFFF) else speed

    if not driver_info(ifname, netns)["bus"]:
        return None
    try:
        return seam.on(netns).call(ask)
    except OSError:
        return None


def stats_refresh_s(ifname: str, netns: str | None = None) -> float | None:
    """How often the driver refreshes the link's statistics, where it says so (ethtool's
    ``stats-block-usecs``, read through pyroute2: bnxt about 1 s); None where its counters
    are live (veth, virtio-net, most drivers) or it says nothing."""
    def ask() -> float | None:
        try:
            ethtool = netlink.IoctlEthtool(ifname)
        except OSError:
            return None
        try:
            usecs = ethtool.get_coalesce().stats_block_coalesce_usecs
        except Exception:  # noqa: BLE001 - no coalescing settings (lo, veth, a dummy)
            return None
        finally:
            ethtool.close()
        return usecs / 1e6 if usecs else None

    return seam.on(netns).call(ask)


def driver_info(ifname: str, netns: str | None = None) -> dict[str, str]:
    """Driver, driver version, firmware version and bus address of a link (ETHTOOL_GDRVINFO,
    as ``ethtool -i`` shows them); empty strings where the driver says nothing."""
    def ask() -> dict[str, str]:
        request = _DRVINFO.pack(ETHTOOL_GDRVINFO, *([b""] * 6), 0, 0, 0, 0, 0)
        fields = _DRVINFO.unpack(_ethtool(ifname, request))
        text = [f.split(b"\0", 1)[0].decode(errors="replace") for f in fields[1:5]]
        return dict(zip(("driver", "driver_version", "firmware", "bus"), text, strict=True))

    try:
        return seam.on(netns).call(ask)
    except OSError:
        return {"driver": "", "driver_version": "", "firmware": "", "bus": ""}
