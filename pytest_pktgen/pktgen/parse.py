"""Parsers for what pktgen prints: device files (Params, Current, Result), thread files, pgctrl.

Formats are those of the kernel's ``pktgen_if_show``/``pktgen_thread_show`` (identical in 6.1 and
mainline) and also the 2005 layout of the paper's Appendix B (no frags count, no indentation).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from .params import frame_of

RESULT_RE = re.compile(
    r"OK: (?P<elapsed_us>\d+)\(c(?P<busy_us>\d+)\+d(?P<idle_us>\d+)\) usec, "
    r"(?P<sofar>\d+) \((?P<pkt_size>-?\d+)byte(?:,(?P<frags>-?\d+)frags)?\)\s+"
    r"(?P<pps>\d+)pps (?P<mbps>\d+)Mb/sec \((?P<bps>\d+)bps\) errors: (?P<errors>\d+)"
)
VERSION_RE = re.compile(r"Version: (?P<version>\S+)")

PKTGEN_HDR_LEN = 16  # struct pktgen_hdr: magic, seq_num, tv_sec, tv_usec
ETH_ZLEN = 60  # Ethernet's minimum frame without the FCS

# Every "name:" pktgen prints in Params and Current. Values may contain ':' (MACs, IPv6), so
# the file is split on these known names, never on colons.
_KEYS = (
    "min_pkt_size max_pkt_size imix_weights frags delay clone_skb ifname flows flowlen "
    "queue_map_min queue_map_max skb_priority saddr min_saddr max_saddr daddr min_daddr "
    "max_daddr dst_min dst_max src_min src_max src_mac dst_mac udp_src_min udp_src_max "
    "udp_dst_min udp_dst_max src_mac_count dst_mac_count mpls vlan_id vlan_p vlan_cfi svlan_id "
    "tos traffic_class burst node xmit_mode Flags pkts-sofar errors imix_size_counts started "
    "stopped idle seq_num cur_dst_mac_offset cur_src_mac_offset cur_saddr cur_daddr cur_udp_dst "
    "cur_udp_src cur_queue_map"
).split()
# The paper's OCR'd sample writes "src min:"; accept a space for each underscore.
_KEY_RE = re.compile(
    r"(?:(?<=\s)|^)(?P<key>" + "|".join(re.escape(k).replace("_", "[_ ]") for k in
                                        sorted(_KEYS, key=len, reverse=True)) + r"):(?=\s|$)",
    re.M,
)


@dataclass(frozen=True)
class Result:
    """The statistics of one finished (or stopped) run of one device, as pktgen computed them.

    ``pkt_size`` is pktgen's configured size without the 4-byte FCS; ``bps``/``mbps`` are
    computed from it (no FCS, preamble or gap). ``frags`` is None in the 2005 layout and -1 when
    the device held no skb at the end.
    """

    elapsed_us: int
    busy_us: int
    idle_us: int
    sofar: int
    pkt_size: int
    frags: int | None
    pps: int
    mbps: int
    bps: int
    errors: int

    @classmethod
    def parse(cls, text: str) -> Result | None:
        match = RESULT_RE.search(text)
        if not match:
            return None
        values = {k: (int(v) if v is not None else None) for k, v in match.groupdict().items()}
        return cls(**values)

    @property
    def frame_size(self) -> int:
        """Size on the wire with the FCS, as the paper's tables count it."""
        return frame_of(self.pkt_size)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class DeviceStatus:
    """One read of ``/proc/net/pktgen/<dev>``: Params, Current and the Result line."""

    params: dict[str, str] = field(default_factory=dict)
    current: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    result_text: str = ""
    result: Result | None = None
    ipv6: bool = False

    @property
    def sofar(self) -> int:
        return int(self.current.get("pkts-sofar", 0))

    @property
    def errors(self) -> int:
        return int(self.current.get("errors", 0))

    @property
    def count(self) -> int:
        return int(self.params.get("count", 0))

    @property
    def pkt_size(self) -> int:
        return int(self.params.get("min_pkt_size", 0))

    @property
    def encap_bytes(self) -> int:
        """What pktgen's pkt_overhead adds below IP: 4 bytes a VLAN tag, an SVLAN tag, an MPLS
        label (as its Params show them; only shown when set)."""
        labels = len([x for x in self.params.get("mpls", "").split(",") if x.strip()])
        return 4 * labels + 4 * ("vlan_id" in self.params) + 4 * ("svlan_id" in self.params)

    @property
    def min_frame_built(self) -> int:
        """The smallest frame pktgen builds (no FCS): Ethernet 14, IPv4 20 or IPv6 40, UDP 8, its
        own 16-byte header (magic, sequence, timestamp) and the tags. A smaller pkt_size grows
        to this (fill_packet_ipv4/ipv6: "increased datalen")."""
        return 14 + (40 if self.ipv6 else 20) + 8 + PKTGEN_HDR_LEN + self.encap_bytes

    @property
    def frame_built(self) -> int:
        """Bytes of each frame pktgen built (no FCS): pkt_size, or more when its headers did not
        fit (a "64 B" IPv6 point builds 78-byte frames; Result's size and bps still say 60)."""
        return max(self.pkt_size, self.min_frame_built)

    @property
    def src_mac(self) -> str:
        """The source MAC of its frames (its device's own unless ``src_mac`` was set)."""
        return self.params.get("src_mac", "")

    @property
    def udp_src_ports(self) -> range:
        """The UDP source ports it sends from: ``udp_src_min`` to ``udp_src_max`` exclusive
        when a range is set, else ``udp_src_min`` alone."""
        low = int(self.params.get("udp_src_min", 9))
        high = int(self.params.get("udp_src_max", low))
        return range(low, high) if low < high else range(low, low + 1)

    @property
    def repeat(self) -> int:
        """How many times each header goes out: ``clone_skb`` sends of a ``burst`` each."""
        return max(int(self.params.get("clone_skb", 0)), 1) * max(
            int(self.params.get("burst", 1)), 1)

    @property
    def imix_counts(self) -> dict[int, int]:
        """IMIX mode: frames sent of each pkt_size (``imix_size_counts``); empty otherwise."""
        pairs = (pair.split(",") for pair in self.current.get("imix_size_counts", "").split())
        return {int(size): int(count) for size, count in pairs}

    @property
    def fixed_size(self) -> bool:
        """Every frame the same size (no imix, no size range): frame_built is then exact."""
        return ("imix_weights" not in self.params
                and self.params.get("min_pkt_size") == self.params.get("max_pkt_size"))

    @property
    def frame_sent(self) -> int:
        """The frame on the wire with the FCS, as sweeps count frames: what pktgen built, padded
        to Ethernet's 60-byte minimum by the NIC."""
        return frame_of(max(self.frame_built, ETH_ZLEN))

    @property
    def result_ok(self) -> bool:
        return self.result_text.startswith("OK:")

    def as_dict(self) -> dict:
        out = {"params": self.params, "flags": self.flags, "current": self.current,
               "result_text": self.result_text, "ipv6": self.ipv6,
               "result": self.result.as_dict() if self.result else None}
        return out


def _pairs(block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    matches = list(_KEY_RE.finditer(block))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(block)
        key = match.group("key").replace(" ", "_")
        value = " ".join(block[match.end():end].split())
        out.setdefault(key, value)  # "flows" is in both blocks; each block is parsed alone
    return out


def parse_device(text: str) -> DeviceStatus:
    """Parse a pktgen device file. Raises ValueError if it is not one."""
    if "Params:" not in text or "Current:" not in text:
        raise ValueError("not a pktgen device file: no 'Params:' and 'Current:' sections")
    head, rest = text.split("Current:", 1)
    current_text, _, result_text = rest.partition("Result:")
    params_text = head.split("Params:", 1)[1]
    status = DeviceStatus()
    count = re.match(r"\s*count (\d+)", params_text)
    if count:
        status.params["count"] = count.group(1)
    # Flags: NAME  NAME  (the last key of Params; its value runs to "Current:")
    flags_split = re.split(r"(?:(?<=\s)|^)Flags:", params_text, maxsplit=1)
    if len(flags_split) == 2:
        params_text, flags_text = flags_split
        status.flags = flags_text.split()
    status.ipv6 = "IPv6 mode:" in params_text or "IPV6" in status.flags
    status.params.update(_pairs(params_text))
    status.current = _pairs(current_text)
    status.result_text = result_text.strip()
    status.result = Result.parse(status.result_text)
    return status


@dataclass
class ThreadStatus:
    """One read of ``/proc/net/pktgen/kpktgend_N``."""

    running: list[str]
    stopped: list[str]
    result: str

    @property
    def devices(self) -> list[str]:
        return self.running + self.stopped


def parse_thread(text: str) -> ThreadStatus:
    """Parse a pktgen thread file (also the 2005 layout with Name/max_before_softirq lines)."""
    fields = {}
    for key in ("Running", "Stopped", "Result"):
        match = re.search(rf"^\s*{key}:(.*)$", text, re.M)
        fields[key] = match.group(1).strip() if match else ""
    if not re.search(r"^\s*Running:", text, re.M):
        raise ValueError("not a pktgen thread file: no 'Running:' line")
    return ThreadStatus(fields["Running"].split(), fields["Stopped"].split(), fields["Result"])


def parse_pgctrl(text: str) -> str:
    """Return pktgen's version from the pgctrl file ('2.75')."""
    match = VERSION_RE.search(text)
    if not match:
        raise ValueError("not a pktgen pgctrl file: no 'Version:'")
    return match.group("version")


def result_line(text: str) -> str:
    """The text after 'Result:' in a device or thread file, with its continuation lines."""
    _, found, after = text.partition("Result:")
    return after.strip() if found else ""

