"""The paper's example setups (Section 8.1 and Appendix C) as lists of device configs.

Names follow the paper's script suffixes: ``1-1`` is one CPU (pktgen thread) and one device,
``2-1`` two CPUs driving one device (as ``dev@0``/``dev@1``), and so on. Addresses come from the
benchmark ranges 198.18.0.0/15 and 2001:2::/48 instead of the paper's 10.0.0.0/8 and fec0::.
``Target`` is a transmitting device and the MAC of whatever receives its frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .params import DeviceConfig

DST = "198.18.0.2"
DST_RANGE = ("198.18.0.0", "198.19.255.255")
DST6, SRC6 = "2001:2::2", "2001:2::1"
DST6_RANGE = ("2001:2::1", "2001:2::ffff:ffff")


@dataclass(frozen=True)
class Target:
    device: str
    dst_mac: str


def _dev(target: Target, thread: int, base: dict, suffix: str = "", flags=()) -> DeviceConfig:
    params = {"dst_mac": target.dst_mac, **base}
    return DeviceConfig(target.device + suffix, params, tuple(flags), thread=thread)


def _ipv4(count: int, pkt_size: int, clone_skb: int = 0) -> dict:
    return {"count": count, "pkt_size": pkt_size, "clone_skb": clone_skb, "delay": 0, "dst": DST}


def one_one(targets: Sequence[Target], count: int, pkt_size: int = 60) -> list[DeviceConfig]:
    """1-1: one thread, one device."""
    return [_dev(targets[0], 0, _ipv4(count, pkt_size))]


def one_two(targets: Sequence[Target], count: int, pkt_size: int = 60) -> list[DeviceConfig]:
    """1-2: one thread driving two devices.

    With delay 0 today's pktgen does not interleave devices on a thread: its scheduler picks the
    device with the earliest next_tx, which delay 0 never advances, so the last-added device runs
    to its count first and the other after it (seen in the VM lab on 6.1). Each device's pps is
    then its own rate diluted by the wait; give each a ``ratep`` to make them share the thread.
    """
    return [_dev(t, 0, _ipv4(count, pkt_size)) for t in targets[:2]]


def two_one(targets: Sequence[Target], count: int, pkt_size: int = 60) -> list[DeviceConfig]:
    """2-1: two threads driving one device, as dev@0 and dev@1."""
    return [_dev(targets[0], cpu, _ipv4(count, pkt_size), suffix=f"@{cpu}") for cpu in (0, 1)]


def two_two(targets: Sequence[Target], count: int, pkt_size: int = 60) -> list[DeviceConfig]:
    """2-2: two threads, one device each."""
    return [_dev(t, cpu, _ipv4(count, pkt_size)) for cpu, t in enumerate(targets[:2])]


def one_one_rdos(targets: Sequence[Target], count: int, pkt_size: int = 60) -> list[DeviceConfig]:
    """1-1-rdos: route DoS, a fresh random destination per packet (clone_skb 0)."""
    base = {**_ipv4(count, pkt_size), "dst_min": DST_RANGE[0], "dst_max": DST_RANGE[1]}
    del base["dst"]
    return [_dev(targets[0], 0, base, flags=["IPDST_RND"])]


def one_one_ip6(targets: Sequence[Target], count: int, pkt_size: int = 100) -> list[DeviceConfig]:
    """1-1-ip6: IPv6 from src6 to dst6 (UDP checksums on: IPv6 receivers drop zero ones)."""
    base = {"count": count, "pkt_size": pkt_size, "clone_skb": 0, "dst6": DST6, "src6": SRC6}
    return [_dev(targets[0], 0, base, flags=["UDPCSUM"])]


def one_one_ip6_rdos(targets: Sequence[Target], count: int,
                     pkt_size: int = 100) -> list[DeviceConfig]:
    """1-1-ip6-rdos: IPv6 route DoS over a destination range."""
    base = {"count": count, "pkt_size": pkt_size, "clone_skb": 0, "dst6_min": DST6_RANGE[0],
            "dst6_max": DST6_RANGE[1], "src6": SRC6}
    return [_dev(targets[0], 0, base, flags=["IPDST_RND", "UDPCSUM"])]


def one_one_flows(targets: Sequence[Target], count: int, pkt_size: int = 60,
                  flows: int = 8192, flowlen: int = 4) -> list[DeviceConfig]:
    """1-1-flows: 8k concurrent flows of 4 packets over a random destination range."""
    base = {**_ipv4(count, pkt_size), "dst_min": DST_RANGE[0], "dst_max": DST_RANGE[1],
            "flows": flows, "flowlen": flowlen}
    del base["dst"]
    return [_dev(targets[0], 0, base, flags=["IPDST_RND"])]


def multi(targets: Sequence[Target], threads: int, ratep: int, clone_skb: int = 0,
          pkt_size: int = 60) -> list[DeviceConfig]:
    """The 2x4+2 script scaled: every target on every thread (``dev@thread``), count 0 (stop the
    run with a duration), destinations 198.18.3.<n> as the script's 192.168.3.10<n>.

    Unlike the 2005 script each device gets a rate (``ratep``): with count 0 and delay 0 only
    the last device added to a thread would ever send (see :func:`one_two`).
    """
    configs = []
    for thread in range(threads):
        for n, target in enumerate(targets):
            base = {"count": 0, "clone_skb": clone_skb, "min_pkt_size": pkt_size,
                    "max_pkt_size": pkt_size, "dst": f"198.18.3.{100 + n}", "ratep": ratep}
            configs.append(_dev(target, thread, base, suffix=f"@{thread}"))
    return configs


SETUPS: dict[str, Callable[..., list[DeviceConfig]]] = {
    "1-1": one_one, "1-2": one_two, "2-1": two_one, "2-2": two_two, "1-1-rdos": one_one_rdos,
    "1-1-ip6": one_one_ip6, "1-1-ip6-rdos": one_one_ip6_rdos, "1-1-flows": one_one_flows,
}
