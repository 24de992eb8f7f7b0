"""Undo what a ledger lists (:mod:`pytest_pktgen.host.ledger`): NICs sent home and restored
as found, namespaces (with the links and pktgen devices inside them) and links deleted, IRQs'
affinity written back. For a
dead owner's ledger (:mod:`pytest_pktgen.run.leftovers`) and for an SSH host's agent whose
controller is gone (:mod:`pytest_pktgen.host.agent`) alike."""

from __future__ import annotations

from . import irq, netlink, netns, nicstate


def undo_record(record: dict) -> tuple[list[str], list[str]]:
    """What was undone and what could not be, one phrase each."""
    done, failed = [], []
    for ifname, moved in dict(record.get("nics", {})).items():
        try:
            nicstate.send_home(nicstate.NicState.from_dict(moved["state"]), moved["netns"])
            done.append(f"sent {ifname} home from {moved['netns']}, restored as found")
        except (OSError, LookupError, nicstate.NicNotRestored) as err:
            failed.append(f"{ifname}: {err}")
    gone = [name for name in record.get("namespaces", []) if (netns.NETNS_DIR / name).exists()]
    for name in gone:
        netns.remove(name)
    if gone:
        done.append(f"removed namespace(s) {', '.join(gone)}")
    irqs = record.get("irqs", {})
    if irqs:
        wrong = irq.restore_masks({int(n): mask for n, mask in irqs.items()})
        restored = [n for n in irqs if int(n) not in wrong]
        if restored:
            done.append(f"restored the affinity of IRQ(s) {', '.join(restored)} as found")
        failed += [f"IRQ {n}: affinity reads {now}, not {saved}"
                   for n, (saved, now) in wrong.items()]
    if record.get("links"):
        with netlink.IPRoute() as ipr:
            links = [name for name in record["links"] if ipr.link_lookup(ifname=name)]
            for name in links:
                ipr.link("del", ifname=name)
        if links:
            done.append(f"removed link(s) {', '.join(links)}")
    return done, failed
