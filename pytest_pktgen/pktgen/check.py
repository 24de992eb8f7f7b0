"""What ran is what was asked: a device config compared with the kernel's own Params."""

from __future__ import annotations

import ipaddress

from .params import DELAY_PAUSE, PARAMS, DeviceConfig
from .parse import DeviceStatus

NEVER = 2**64 - 1  # a delay of "never transmit" (DELAY_PAUSE), as pktgen shows it: ULLONG_MAX

# config parameter -> the Params key pktgen shows it under (same name when absent here)
_SHOWN_AS = {"dst": "dst_min", "dst6": "daddr", "dst6_min": "min_daddr", "dst6_max": "max_daddr",
             "src6": "saddr"}
_NOT_SHOWN = {"debug", "spi", "svlan_p", "svlan_cfi", "rate", "ratep"}
_XMIT_SHOWN = {"netif_receive": "netif_receive", "queue_xmit": "xmit_queue"}


def expected_params(config: DeviceConfig) -> dict[str, str]:
    """The Params values the kernel should show for this config, as pktgen prints them."""
    out: dict[str, str] = {}
    for name, value in config.params.items():
        if name in _NOT_SHOWN:
            continue
        wire = PARAMS[name].check(name, value)
        if name == "pkt_size":
            out["min_pkt_size"] = out["max_pkt_size"] = wire
        elif name in ("tos", "traffic_class"):
            out[name] = f"0x{wire}"
        elif name == "mpls":
            out[name] = wire.replace(",", ", ")
        elif name == "xmit_mode":
            if wire in _XMIT_SHOWN:
                out[name] = _XMIT_SHOWN[wire]
        elif name == "burst":
            if int(wire) > 1:
                out[name] = wire
        elif name == "delay" and int(wire) == DELAY_PAUSE:
            out[name] = str(NEVER)
        else:
            out[_SHOWN_AS.get(name, name)] = wire
    rate, ratep = config.get("rate"), config.get("ratep")
    if ratep:
        out["delay"] = str(1_000_000_000 // int(ratep))
    elif rate:
        size = int(config.get("pkt_size", config.get("min_pkt_size", 0)))
        out["delay"] = str(size * 8 * 1000 // int(rate))
    return out


def _same(have: str, want: str) -> bool:
    """Equal as pktgen prints them: case aside, and addresses by value (the kernel prints an
    IPv4-mapped IPv6 address as ::ffff:198.18.0.2, Python as ::ffff:c612:2)."""
    if have.lower() == want.lower():
        return True
    try:
        return ipaddress.ip_address(have) == ipaddress.ip_address(want)
    except ValueError:
        return False


def mismatches(config: DeviceConfig, status: DeviceStatus, *, shown_only: bool = False
               ) -> list[str]:
    """Every difference between what ``config`` asked and what the kernel shows; [] if none.

    ``shown_only``: a value the kernel does not print (some only appear when non-zero or in
    some modes) is not counted as a difference; every value it prints must be the one asked.
    """
    out = []
    for key, want in expected_params(config).items():
        have = status.params.get(key)
        if have is None and shown_only:
            continue
        if have is None or not _same(have, want):
            out.append(f"{config.device}: {key} is {have!r}, asked {want!r}")
    for flag in config.flags:
        name = flag.lstrip("!")
        if name == "FLOW_RND":
            continue
        if flag.startswith("!") == (name in status.flags):
            state = "set" if name in status.flags else "clear"
            out.append(f"{config.device}: flag {name} is {state}, asked {flag!r}")
    return out
