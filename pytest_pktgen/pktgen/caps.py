"""What pktgen can do on a link, asked of the kernel on a scratch pktgen device: shared-skb
support (clone_skb > 0, burst > 1), the transmit modes, the TX queues. Probed once per link and
process; the runner's setup and the topologies use the same answer, and a config the link
cannot do is one exception, :class:`~pytest_pktgen.errors.DeviceUnsupported` (an xfail with
the reason under pytest), never an errno halfway through a setup."""

from __future__ import annotations

from dataclasses import dataclass

from ..host import netdev
from .params import DeviceConfig
from .proc import Pktgen

XMIT_MODES = ("start_xmit", "netif_receive", "queue_xmit")


@dataclass(frozen=True)
class Caps:
    """What pktgen can do on one link, as the kernel answered."""

    shared_skb: bool  # clone_skb > 0 and start_xmit burst > 1
    xmit_modes: tuple[str, ...]
    tx_queues: int

    def unsupported(self, config: DeviceConfig) -> str | None:
        """Why this link cannot run ``config``, or None if it can."""
        mode = config.get("xmit_mode", "start_xmit")
        if mode not in self.xmit_modes:
            return f"{config.netdev} does not take xmit_mode {mode}"
        if int(config.get("clone_skb", 0)) > 0 and not self.shared_skb:
            return f"{config.netdev} has no shared-skb support: clone_skb must be 0"
        if int(config.get("burst", 1)) > 1 and not self.shared_skb and mode != "netif_receive":
            return f"{config.netdev} has no shared-skb support: burst must be 1"
        if int(config.get("queue_map_max", 0)) >= self.tx_queues:
            return f"{config.netdev} has {self.tx_queues} TX queue(s)"
        return None


# (namespace, ifindex, ifname) -> Caps: a link keeps what it can do while it exists
_known: dict[tuple, Caps] = {}


def link_caps(pktgen: Pktgen, ifname: str) -> Caps | None:
    """The link's capabilities in ``pktgen``'s namespace, probed on the first pktgen thread that
    has no device (the caller holds the namespace's lock); None when every thread is busy."""
    info = netdev.link_info(ifname, netns=pktgen.netns)
    key = (pktgen.netns, info["index"], ifname)
    if key not in _known:
        free = [t for t in pktgen.threads() if not pktgen.thread_status(t).devices]
        if not free:
            return None
        _known[key] = _probe(pktgen, free[0], ifname, int(info["tx_queues"] or 1))
    return _known[key]


def _probe(pktgen: Pktgen, thread: int, ifname: str, tx_queues: int) -> Caps:
    device = f"{ifname}@caps"
    pktgen.add_device(thread, device)
    try:
        shared = pktgen.accepts(device, "clone_skb 1")
        pktgen.accepts(device, "clone_skb 0")
        modes = tuple(m for m in XMIT_MODES if pktgen.accepts(device, f"xmit_mode {m}"))
    finally:
        pktgen.remove_thread_devices([thread])
    return Caps(shared, modes, tx_queues)
