"""The state the integration suite must leave as it found it."""

from __future__ import annotations


def state() -> dict:
    """What the suite must leave as it found it: namespaces, links of ours, IRQ masks, the
    lab NICs' place and state."""
    from pytest_pktgen.host.irq import PROC_IRQ
    from pytest_pktgen.host.netlink import IPRoute
    from pytest_pktgen.host.netlink import netns as pr_netns
    from pytest_pktgen.host.netns import NAME_PREFIX

    with IPRoute() as ipr:
        links = {link.get_attr("IFLA_IFNAME"): bool(link["flags"] & 1) for link in ipr.get_links()}
    masks = {}
    for path in PROC_IRQ.glob("*/smp_affinity"):
        masks[path.parent.name] = path.read_text().strip()
    from pathlib import Path

    return {
        "modules": sorted(m for m in ("pktgen", "pgrx") if Path("/sys/module", m).exists()),
        "netns": sorted(n for n in pr_netns.listnetns() if n.startswith(NAME_PREFIX)),
        "our_links": sorted(n for n in links if n.startswith(NAME_PREFIX)),
        "links": links,
        "irq_masks": masks,
    }
