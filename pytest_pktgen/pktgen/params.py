"""pktgen device parameters: each value validated and rendered to its wire text before any write.

The kernel turns garbage into 0 without complaint (``count abc`` means "send forever"), stores
UDP ports as u16 (70000 becomes 4464) and answers typos in flags with a successful write. So
every value is checked here, and the error names the parameter, the value and what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..errors import PktgenConfigError

U32 = 2**32 - 1
S32 = 2**31 - 1
TEN_DIGITS = 9_999_999_999  # num_arg parses at most 10 digits
MIN_PKT_SIZE = 42  # 14 Ethernet + 20 IPv4 + 8 UDP; the kernel clamps smaller sizes silently
MAX_PKT_SIZE = 65535
FCS_LEN = 4  # pkt_size leaves out the frame check sequence the NIC appends
FRAME_MIN, FRAME_MAX = 64, 65539  # Ethernet's minimum frame; pktgen's largest pkt_size + FCS


# IMIX profiles by name: (frame on the wire with the FCS, weight) pairs. "simple" is the simple
# IMIX of the field (7:4:1 of 64, 594 and 1518 bytes: 354 bytes on average).
IMIX_PROFILES = {"simple": ((64, 7), (594, 4), (1518, 1))}
IMIX_MAX = 20  # pairs pktgen takes (E2BIG on the 21st)


def pkt_size_of(frame: int) -> int:
    """pktgen's pkt_size for a frame on the wire: the FCS the NIC appends left out. The one
    place the rule lives (sweeps, markers and reports count frames, as the paper's table)."""
    return frame - FCS_LEN


def frame_of(pkt_size: int) -> int:
    """The frame on the wire for a pkt_size: with the FCS."""
    return pkt_size + FCS_LEN
DELAY_PAUSE = 2147483647  # the kernel's "never transmit" value

XMIT_MODES = ("start_xmit", "netif_receive", "queue_xmit")

# Flags in kernel bit order. IPV6 is set by dst6/src6 and only '!IPV6' is accepted;
# SHARED exists from about 6.7 on; IPSEC needs CONFIG_XFRM. FLOW_RND is a pseudo-flag.
FLAGS = (
    "IPV6", "IPSRC_RND", "IPDST_RND", "TXSIZE_RND", "UDPSRC_RND", "UDPDST_RND", "UDPCSUM",
    "NO_TIMESTAMP", "MPLS_RND", "QUEUE_MAP_RND", "QUEUE_MAP_CPU", "FLOW_SEQ", "IPSEC",
    "MACSRC_RND", "MACDST_RND", "VID_RND", "SVID_RND", "NODE", "SHARED",
)
FLAG_ALIASES = {"NODE_ALLOC": "NODE"}  # the documentation's name, refused by the kernel


def _fail(param: str, value: object, allowed: str):
    raise PktgenConfigError(param, value, allowed)


def _integer(param: str, value: object, lo: int, hi: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        _fail(param, value, f"a whole number from {lo} to {hi}{unit}")
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text):
        _fail(param, value, f"a whole number from {lo} to {hi}{unit}")
    number = int(text)
    if not lo <= number <= hi:
        _fail(param, value, f"a whole number from {lo} to {hi}{unit}")
    return number


def uint(lo: int, hi: int, unit: str = "") -> Callable[[str, object], str]:
    def check(param: str, value: object) -> str:
        return str(_integer(param, value, lo, hi, unit))

    return check


def ipv4(param: str, value: object) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        _fail(param, value, "an IPv4 address in dotted form, e.g. 198.18.0.2")


def ipv6(param: str, value: object) -> str:
    text = str(value).strip()
    if "%" in text:  # Python takes fe80::1%eth1; the kernel stops reading at the % (OK)
        _fail(param, value, "an IPv6 address without a zone (%...): pktgen ignores the zone "
              "and sends out of its own device")
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        _fail(param, value, "an IPv6 address, e.g. 2001:2::2")


_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def mac(param: str, value: object) -> str:
    text = str(value).strip()
    if not _MAC_RE.fullmatch(text):
        _fail(param, value, "a MAC address: six colon-separated hex pairs, e.g. 02:00:00:00:00:01")
    return text.lower()


def hex_byte(param: str, value: object) -> str:
    # The kernel wants exactly two hex digits ("tos f" is an error, "tos 0f" works).
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"(0x)?[0-9a-fA-F]{1,2}", value.strip()):
        number = int(value.strip(), 16)
    else:
        _fail(param, value, "a byte: an int 0..255 or two hex digits such as '0f'")
    if not 0 <= number <= 255:
        _fail(param, value, "a byte: an int 0..255 or two hex digits such as '0f'")
    return f"{number:02x}"


def xmit_mode(param: str, value: object) -> str:
    if value not in XMIT_MODES:
        _fail(param, value, "one of " + ", ".join(XMIT_MODES))
    return str(value)


def _items(value: object) -> list:
    if isinstance(value, str):
        return value.replace(",", " ").split() if value.strip() else []
    if isinstance(value, Iterable):
        return list(value)
    return [value]


def mpls(param: str, value: object) -> str:
    # 6.1 shifts short labels left by 4 bits, so always send 8 hex digits.
    labels = []
    for item in _items(value):
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= U32:
            labels.append(item)
        elif isinstance(item, str) and re.fullmatch(r"(0x)?[0-9a-fA-F]{1,8}", item):
            labels.append(int(item, 16))
        else:
            _fail(param, value, "1 to 16 MPLS label stack entries, 32-bit each (ints or hex)")
    if not 1 <= len(labels) <= 16:
        _fail(param, value, "1 to 16 MPLS label stack entries, 32-bit each (ints or hex)")
    return ",".join(f"{label:08x}" for label in labels)


def imix_weights(param: str, value: object) -> str:
    allowed = (f"1 to 20 (size, weight) pairs, size {MIN_PKT_SIZE}..{MAX_PKT_SIZE},"
               " weight 1..9999999999, e.g. [(60, 7), (590, 4), (1500, 1)] or '60,7 590,4 1500,1'")
    if isinstance(value, str):
        if not re.fullmatch(r"\s*\d+,\d+(\s+\d+,\d+)*\s*", value):
            _fail(param, value, allowed)
        pairs = [pair.split(",") for pair in value.split()]
    else:
        pairs = _items(value)
    if not 1 <= len(pairs) <= 20:
        _fail(param, value, allowed)
    out = []
    for pair in pairs:
        try:
            size, weight = pair
        except (TypeError, ValueError):
            _fail(param, value, allowed)
        out.append(f"{_integer(param, size, MIN_PKT_SIZE, MAX_PKT_SIZE)},"
                   f"{_integer(param, weight, 1, TEN_DIGITS)}")
    return " ".join(out)


def imix_pairs(value: object) -> tuple[tuple[int, int], ...]:
    """An ``imix`` value as (frame, weight) pairs: a profile's name (:data:`IMIX_PROFILES`) or
    the pairs themselves, frames on the wire with the FCS as every size here."""
    allowed = (f"a profile ({', '.join(map(repr, IMIX_PROFILES))}) or 1 to {IMIX_MAX} "
               f"(frame, weight) pairs, frames {FRAME_MIN} to {FRAME_MAX} bytes with the FCS, "
               "weights 1 or more, e.g. [(64, 7), (594, 4), (1518, 1)]")
    if isinstance(value, str):
        if value not in IMIX_PROFILES:
            _fail("imix", value, allowed)
        return IMIX_PROFILES[value]
    try:
        pairs = tuple((frame, weight) for frame, weight in value)
    except (TypeError, ValueError):
        _fail("imix", value, allowed)
    if not 1 <= len(pairs) <= IMIX_MAX or any(
            isinstance(x, bool) or not isinstance(x, int) for pair in pairs for x in pair) or any(
            not FRAME_MIN <= frame <= FRAME_MAX or weight < 1 for frame, weight in pairs):
        _fail("imix", value, allowed)
    if len({frame for frame, _ in pairs}) != len(pairs):
        _fail("imix", value, allowed + "; each frame size once")
    return pairs


def imix_weights_of(params: dict) -> dict:
    """``params`` with an ``imix`` (a profile or (frame, weight) pairs) as pktgen's
    ``imix_weights``, whose sizes leave the FCS out as its pkt_size does."""
    if "imix" not in params:
        return params
    out = {k: v for k, v in params.items() if k != "imix"}
    out["imix_weights"] = [(pkt_size_of(frame), weight)
                           for frame, weight in imix_pairs(params["imix"])]
    return out


@dataclass(frozen=True)
class Param:
    """One device parameter: its name as pktgen spells it and how to check a value."""

    name: str
    check: Callable[[str, object], str]
    help: str

    def render(self, value: object) -> str:
        return f"{self.name} {self.check(self.name, value)}"


def _p(name: str, check: Callable[[str, object], str], help: str) -> Param:
    return Param(name, check, help)


PARAMS: dict[str, Param] = {p.name: p for p in (
    _p("count", uint(0, TEN_DIGITS, " packets"), "packets to send; 0 runs until stopped"),
    _p("pkt_size", uint(MIN_PKT_SIZE, MAX_PKT_SIZE, " bytes"), "packet size without the FCS"),
    _p("min_pkt_size", uint(MIN_PKT_SIZE, MAX_PKT_SIZE, " bytes"), "lower end of a size range"),
    _p("max_pkt_size", uint(MIN_PKT_SIZE, MAX_PKT_SIZE, " bytes"), "upper end of a size range"),
    _p("imix_weights", imix_weights, "IMIX size,weight pairs"),
    _p("debug", uint(0, 1), "global pktgen debug switch"),
    _p("frags", uint(0, 17), "page fragments per packet (MAX_SKB_FRAGS is 17)"),
    _p("delay", uint(0, DELAY_PAUSE, " ns"), "gap between transmits; 2147483647 pauses"),
    _p("rate", uint(1, TEN_DIGITS, " Mb/s"), "rate limit in Mb/s (set pkt_size first)"),
    _p("ratep", uint(1, TEN_DIGITS, " packets/s"), "rate limit in packets per second"),
    _p("udp_src_min", uint(0, 65535), "UDP source port, low end"),
    _p("udp_src_max", uint(0, 65535), "UDP source port, high end (exclusive)"),
    _p("udp_dst_min", uint(0, 65535), "UDP destination port, low end"),
    _p("udp_dst_max", uint(0, 65535), "UDP destination port, high end (exclusive)"),
    _p("clone_skb", uint(0, S32), "send each skb this many times (needs shared-skb support)"),
    _p("src_mac_count", uint(0, S32), "number of source MACs to cycle through"),
    _p("dst_mac_count", uint(0, S32), "number of destination MACs to cycle through"),
    _p("burst", uint(1, S32), "packets per xmit call (needs shared-skb support)"),
    _p("node", uint(0, 1023), "NUMA node for skb allocation (with flag NODE)"),
    _p("xmit_mode", xmit_mode, "start_xmit, netif_receive or queue_xmit"),
    _p("dst", ipv4, "IPv4 destination (same as dst_min)"),
    _p("dst_min", ipv4, "IPv4 destination, low end"),
    _p("dst_max", ipv4, "IPv4 destination, high end"),
    _p("src_min", ipv4, "IPv4 source, low end"),
    _p("src_max", ipv4, "IPv4 source, high end"),
    _p("dst6", ipv6, "IPv6 destination (sets IPv6 mode)"),
    _p("dst6_min", ipv6, "IPv6 destination, low end"),
    _p("dst6_max", ipv6, "IPv6 destination mask for random destinations"),
    _p("src6", ipv6, "IPv6 source"),
    _p("dst_mac", mac, "destination MAC: the receiver's, or frames are dropped as OTHERHOST"),
    _p("src_mac", mac, "source MAC; the device's own if unset"),
    _p("flows", uint(0, 65536), "concurrent flows"),
    _p("flowlen", uint(0, U32), "packets per flow"),
    _p("spi", uint(0, U32), "IPsec SPI (needs CONFIG_XFRM, flag IPSEC)"),
    _p("queue_map_min", uint(0, 65535), "lowest TX queue"),
    _p("queue_map_max", uint(0, 65535), "highest TX queue"),
    _p("mpls", mpls, "MPLS label stack entries"),
    _p("vlan_id", uint(0, 4095), "802.1Q VLAN id"),
    _p("vlan_p", uint(0, 7), "802.1Q priority"),
    _p("vlan_cfi", uint(0, 1), "802.1Q CFI bit"),
    _p("svlan_id", uint(0, 4095), "outer (802.1ad) VLAN id; needs vlan_id"),
    _p("svlan_p", uint(0, 7), "outer VLAN priority"),
    _p("svlan_cfi", uint(0, 1), "outer VLAN CFI bit"),
    _p("tos", hex_byte, "IPv4 TOS byte"),
    _p("traffic_class", hex_byte, "IPv6 traffic class byte"),
    _p("skb_priority", uint(0, 999_999_999), "skb->priority (qdisc class)"),
)}

# Written in this order whatever the user's order: xmit_mode first (the kernel checks burst and
# clone_skb against the mode in force), sizes before rate/ratep (which derive the delay from
# min_pkt_size at write time), vlan before svlan and its bits, flags last.
WRITE_ORDER = tuple(PARAMS)
ORDER = {name: i for i, name in enumerate(WRITE_ORDER)}
_RATE_AFTER = ("rate", "ratep")
_VLAN_BITS = ("vlan_p", "vlan_cfi", "svlan_id", "svlan_p", "svlan_cfi")

# Commands whose success leaves the device's Result line as it was.
RESULT_UNCHANGED = frozenset({"imix_weights"})


def check_flags(flags: Iterable[str], known: Iterable[str] = FLAGS) -> list[str]:
    """Return the flags as pktgen spells them (``NAME`` or ``!NAME``), or raise."""
    known = set(known)
    settable = (known - {"IPV6"}) | {"FLOW_RND"}
    out = []
    for flag in flags:
        text = str(flag).strip()
        negate = text.startswith("!")
        name = text[1:] if negate else text
        if name in FLAG_ALIASES:
            _fail("flag", flag, f"the kernel calls it {FLAG_ALIASES[name]!r}")
        if name == "IPV6" and not negate:
            _fail("flag", flag, "IPV6 is set by dst6/src6; only '!IPV6' can be written")
        if name not in settable and not (negate and name == "IPV6"):
            _fail("flag", flag, "one of " + ", ".join(sorted(settable)) + " (or !NAME to clear)")
        out.append(text)
    return out


@dataclass(frozen=True)
class DeviceConfig:
    """What one pktgen device (``eth1`` or ``eth1@3``) sends: validated on creation.

    ``params`` maps pktgen parameter names to values (ints, strings, lists for mpls and
    imix_weights); ``flags`` lists flag names, ``!NAME`` clears one.
    """

    device: str
    params: Mapping[str, object]
    flags: tuple[str, ...] = ()
    thread: int = 0

    def __post_init__(self):
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "flags", tuple(self.flags))
        self.commands()  # validate now: a bad config never exists

    @property
    def netdev(self) -> str:
        return self.device.split("@", 1)[0]

    def get(self, name: str, default: object = None) -> object:
        return self.params.get(name, default)

    def commands(self) -> list[str]:
        """The device-file commands for this config, in a safe order. Raises on bad input."""
        check_device_name(self.device)
        if not isinstance(self.thread, int) or isinstance(self.thread, bool) or self.thread < 0:
            raise PktgenConfigError("thread", self.thread, "a CPU number (0, 1, ...)", self.device)
        for name in self.params:
            if name not in PARAMS:
                hint = _did_you_mean(name)
                raise PktgenConfigError(name, self.params[name], "a pktgen device parameter" + hint,
                                        self.device)
        try:
            rendered = {name: PARAMS[name].render(v) for name, v in self.params.items()}
            flags = check_flags(self.flags)
        except PktgenConfigError as err:  # say which device the bad value was for
            raise PktgenConfigError(err.param, err.value, err.allowed, self.device) from None
        self._check_combinations()
        names = sorted(rendered, key=lambda n: (n != "xmit_mode", n in _RATE_AFTER,
                                                n in _VLAN_BITS, ORDER[n]))
        return [rendered[n] for n in names] + [f"flag {f}" for f in flags]

    def _check_combinations(self):
        p, dev = self.params, self.device
        clone = int(p.get("clone_skb", 0) or 0)
        burst = int(p.get("burst", 1) or 1)
        mode = p.get("xmit_mode", "start_xmit")
        if clone > 0 and mode == "netif_receive":
            raise PktgenConfigError("clone_skb", clone, "0 with xmit_mode netif_receive", dev)
        if clone > 0 and "imix_weights" in p:
            raise PktgenConfigError("clone_skb", clone, "0 when imix_weights is set", dev)
        if burst > 1 and mode == "queue_xmit":
            raise PktgenConfigError("burst", burst, "1 with xmit_mode queue_xmit", dev)
        if "rate" in p and "ratep" in p:
            raise PktgenConfigError("rate", p["rate"], "either rate or ratep, not both", dev)
        if ("rate" in p or "ratep" in p) and "delay" in p:
            raise PktgenConfigError("delay", p["delay"], "not together with rate/ratep", dev)
        if "rate" in p:
            # pktgen turns Mb/s into a delay from min_pkt_size as it stands when rate is written
            sizes = {int(p[k]) for k in ("min_pkt_size", "max_pkt_size") if k in p}
            if "imix_weights" in p or len(sizes) > 1:
                raise PktgenConfigError("rate", p["rate"], "ratep (packets/s) when frame sizes "
                                        "vary: pktgen paces rate by the smallest frame", dev)
            if "pkt_size" not in p and "min_pkt_size" not in p:
                raise PktgenConfigError("rate", p["rate"], "together with pkt_size (pktgen "
                                        "derives the delay from the frame size), or ratep", dev)
        for low, high in (("min_pkt_size", "max_pkt_size"), ("udp_src_min", "udp_src_max"),
                          ("udp_dst_min", "udp_dst_max"), ("queue_map_min", "queue_map_max")):
            if low in p and high in p and int(p[low]) > int(p[high]):
                raise PktgenConfigError(high, p[high], f"at least {low} ({p[low]})", dev)
        if "pkt_size" in p and ("min_pkt_size" in p or "max_pkt_size" in p):
            raise PktgenConfigError("pkt_size", p["pkt_size"],
                                    "either pkt_size or min_pkt_size/max_pkt_size, not both", dev)
        if "dst" in p and "dst_min" in p:
            raise PktgenConfigError("dst", p["dst"], "either dst or dst_min, not both", dev)
        has6 = any(k in p for k in ("dst6", "dst6_min", "dst6_max", "src6"))
        has4 = any(k in p for k in ("dst", "dst_min", "dst_max", "src_min", "src_max"))
        if has6 and has4:
            raise PktgenConfigError("dst6", p.get("dst6", p.get("dst6_min")),
                                    "IPv4 (dst/src) or IPv6 (dst6/src6) addresses, not both", dev)
        if any(k in p for k in _VLAN_BITS) and "vlan_id" not in p:
            key = next(k for k in _VLAN_BITS if k in p)
            raise PktgenConfigError(key, p[key], "only together with vlan_id", dev)
        if "mpls" in p and "vlan_id" in p:
            raise PktgenConfigError("mpls", p["mpls"], "either mpls or vlan_id, not both", dev)


IFNAME = "an interface name (1-15 chars, no '/', ':', '=', '\"' or spaces)"
_IFNAME_BAD = re.compile(r"[\s/:=\"@]")


def check_ifname(name: object, what: str = "device") -> str:
    """A network interface's name as the kernel takes it (IFNAMSIZ)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 15 or _IFNAME_BAD.search(name):
        raise PktgenConfigError(what, name, IFNAME)
    return name


def check_device_name(device: object) -> str:
    """pktgen names are ``netdev`` or ``netdev@suffix``, at most 31 characters."""
    allowed = f"{IFNAME}, optionally '@suffix', 31 chars in all"
    if not isinstance(device, str) or not device or len(device) > 31:
        raise PktgenConfigError("device", device, allowed)
    netdev, _, suffix = device.partition("@")
    try:
        check_ifname(netdev)
    except PktgenConfigError:
        raise PktgenConfigError("device", device, allowed) from None
    if _IFNAME_BAD.search(suffix):
        raise PktgenConfigError("device", device, allowed)
    return device


# Names that documentation and other wrappers use, and what pktgen really calls them.
KNOWN_MISTAKES = {
    "dst_min6": "dst6_min", "dst_max6": "dst6_max", "src6_min": "src6 (there is no src6 range)",
    "src6_max": "src6 (there is no src6 range)", "dstmac": "dst_mac", "srcmac": "src_mac",
    "svlan": "svlan_id", "vlan": "vlan_id",
}


def _did_you_mean(name: str) -> str:
    import difflib

    if name in KNOWN_MISTAKES:
        return f" (pktgen calls it {KNOWN_MISTAKES[name]})"
    close = difflib.get_close_matches(name, PARAMS, n=1)
    return (f" (did you mean {close[0]!r}?)" if close
            else " (see pytest_pktgen.pktgen.params.PARAMS)")
