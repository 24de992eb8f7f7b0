"""Look at what pktgen's frames are: a scapy sample captured inside the sink's namespace.

A sniffer is for checking what frames look like, never for counting: under load it misses most
of them (the VM lab caught 120 of 2000 at 10 kpps), and it says how many it missed. scapy is
imported only here, and only when a sniffer starts (about 12 s under TCG).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field

from .. import host
from ..pktgen.params import PARAMS, DeviceConfig

PKTGEN_MAGIC = 0xBE9BE955
SOCKET_BUFFER = 32 << 20
SO_RCVBUFFORCE = 33


@dataclass(frozen=True)
class Frame:
    """The fields of one captured pktgen frame that a config decides."""

    length: int  # Ethernet frame without FCS: pktgen's pkt_size
    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    sport: int
    dport: int
    magic: int
    seq: int
    tos: int  # IPv4 TOS or IPv6 traffic class


@dataclass
class SniffReport:
    frames: list[Frame]
    sent: int
    problems: list[str] = field(default_factory=list)

    @property
    def missed(self) -> int:
        return self.sent - len(self.frames)


class Sniffer:
    """Captures up to ``limit`` UDP frames to ``port`` on ``ifname`` inside ``netns``."""

    def __init__(self, ifname: str, netns: str | None, limit: int = 5000, port: int = 9):
        self.ifname, self.netns, self.limit, self.port = ifname, netns, limit, port
        self._sniffer = None
        self._socket = None

    def start(self) -> None:
        # scapy's parts this needs, not scapy.all: every layer it has took 29 s to import in
        # the VM lab under TCG, these 3x less
        import scapy.layers.inet  # noqa: F401 - Ether/IP/UDP bound for dissection
        import scapy.layers.inet6  # noqa: F401 - and IPv6
        from scapy.arch.linux import L2ListenSocket
        from scapy.config import conf
        from scapy.sendrecv import AsyncSniffer

        conf.bufsize = 65536

        def open_socket():  # the socket belongs to the namespace it is opened in
            sock = L2ListenSocket(iface=self.ifname)
            # a big receive buffer rides out bursts while scapy's thread lags (root: FORCE)
            sock.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCKET_BUFFER)
            return sock

        self._socket = host.on(self.netns).call(open_socket)
        self._packets = []
        self._sniffer = AsyncSniffer(opened_socket=self._socket, store=False, count=self.limit,
                                     lfilter=self._wanted, prn=self._packets.append)
        self._sniffer.start()
        time.sleep(0.2)  # the sniffer thread is reading before the first frame is sent

    def _wanted(self, packet) -> bool:
        from scapy.layers.inet import UDP

        return UDP in packet and packet[UDP].dport == self.port

    def stop(self, quiet: float = 0.5, timeout: float = 30.0) -> list[Frame]:
        """Stop once the socket buffer is drained: no new frame for ``quiet`` seconds (scapy
        lags far behind the wire under load), or ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = -1
        while len(self._packets) != seen and time.monotonic() < deadline:
            seen = len(self._packets)
            time.sleep(quiet)
        if self._sniffer.running:
            self._sniffer.stop()
        self.close()
        return [_frame(p) for p in self._packets]

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _frame(packet) -> Frame:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    payload = bytes(packet[UDP].payload)
    ip = packet[IP] if IP in packet else packet[IPv6]
    tos = ip.tos if IP in packet else ip.tc
    return Frame(len(bytes(packet)), packet[Ether].src, packet[Ether].dst, ip.src, ip.dst,
                 packet[UDP].sport, packet[UDP].dport, int.from_bytes(payload[0:4], "big"),
                 int.from_bytes(payload[4:8], "big"), tos)


def check(frames: list[Frame], config: DeviceConfig, sent: int, src_mac: str) -> SniffReport:
    """Compare captured frames with what ``config`` asked; every difference is a problem."""
    report = SniffReport(frames, sent)
    p = config.params
    problems = report.problems

    def bad(frame: Frame, what: str) -> None:
        if len(problems) < 20:
            problems.append(f"seq {frame.seq}: {what}")

    dst_range = _range(p.get("dst_min", p.get("dst")), p.get("dst_max"))
    sizes = (int(p["pkt_size"]),) * 2 if "pkt_size" in p else (
        int(p.get("min_pkt_size", 0)), int(p.get("max_pkt_size", 0)))
    udp = {k: int(p[k]) for k in ("udp_src_min", "udp_src_max", "udp_dst_min", "udp_dst_max")
           if k in p}
    tos_param = "tos" if "tos" in p else "traffic_class" if "traffic_class" in p else None
    tos = int(PARAMS[tos_param].check(tos_param, p[tos_param]), 16) if tos_param else None
    last_seq = 0
    for frame in frames:
        if frame.magic != PKTGEN_MAGIC:
            bad(frame, f"magic {frame.magic:#x}")
        if frame.dst_mac.lower() != str(p.get("dst_mac", "")).lower():
            bad(frame, f"dst MAC {frame.dst_mac}")
        if frame.src_mac.lower() != src_mac.lower():
            bad(frame, f"src MAC {frame.src_mac}")
        if "dst6" in p and ipaddress.ip_address(frame.dst_ip) != ipaddress.ip_address(p["dst6"]):
            bad(frame, f"dst {frame.dst_ip}")
        if "src6" in p and ipaddress.ip_address(frame.src_ip) != ipaddress.ip_address(p["src6"]):
            bad(frame, f"src {frame.src_ip}")
        if dst_range and not dst_range[0] <= ipaddress.ip_address(frame.dst_ip) <= dst_range[1]:
            bad(frame, f"dst {frame.dst_ip} outside {dst_range[0]}-{dst_range[1]}")
        if sizes[0] and not sizes[0] <= frame.length <= max(sizes):
            bad(frame, f"length {frame.length}, asked {sizes[0]}..{max(sizes)}")
        for port, low, high in ((frame.sport, "udp_src_min", "udp_src_max"),
                                (frame.dport, "udp_dst_min", "udp_dst_max")):
            lo, hi = udp.get(low, 9), udp.get(high, udp.get(low, 9))
            if not lo <= port <= max(lo, hi):
                bad(frame, f"UDP port {port} outside {lo}..{hi}")
        if tos is not None and frame.tos != tos:
                bad(frame, f"TOS {frame.tos:#04x}, asked {tos:#04x}")
        if frame.seq <= last_seq:
            bad(frame, f"sequence number not increasing after {last_seq}")
        last_seq = frame.seq
    return report


def _range(low, high):
    if low is None:
        return None
    low = ipaddress.ip_address(str(low))
    return low, ipaddress.ip_address(str(high)) if high else low
