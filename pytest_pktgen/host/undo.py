"""Undo what a ledger lists (:mod:`pytest_pktgen.host.ledger`): NICs sent home and restored
as found, namespaces (with the links and pktgen devices inside them) and links deleted, IRQs'
affinity written back. For a dead owner's ledger (:mod:`pytest_pktgen.run.leftovers`) and for
an SSH host's agent whose controller is gone (:mod:`pytest_pktgen.host.agent`) alike.

It never raises: each item is tried on its own, one that cannot be undone is said with what
to do and kept in what is left, for the next cleaner to try again (a NIC that has not come
home yet: a leftover process keeps its namespace alive)."""

from __future__ import annotations

from pathlib import Path

from . import irq, netlink, netns, nicstate

HOME_TIMEOUT_S = 10.0  # how long a NIC of a deleted namespace is waited for


def undo_record(record: dict, home_timeout: float = HOME_TIMEOUT_S
                ) -> tuple[list[str], list[str], dict]:
    """(what was undone, what could not be: one phrase each; what is left: the record of the
    items not undone, empty lists and maps where all was)."""
    done, failed = [], []
    left: dict = {"namespaces": [], "links": [], "nics": {}, "irqs": {}}
    for ifname, moved in dict(record.get("nics", {})).items():
        try:
            nicstate.send_home(nicstate.NicState.from_dict(moved["state"]), moved["netns"],
                               home_timeout)
            done.append(f"sent {ifname} home from {moved['netns']}, restored as found")
        except nicstate.NicNotRestored as err:  # home, restored as far as it goes
            failed.append(f"{ifname}: {err}")
        except Exception as err:  # noqa: BLE001 - not home yet (or unreadable): kept
            left["nics"][ifname] = moved
            failed.append(f"{ifname}: {err}; kept for the next cleaner, which restores it "
                          "once it is home (a process still in its namespace holds it there)")
    removed = []
    for name in record.get("namespaces", []):
        if not (netns.NETNS_DIR / name).exists():
            continue
        try:
            netns.remove(name)
            removed.append(name)
        except Exception as err:  # noqa: BLE001
            left["namespaces"].append(name)
            failed.append(f"namespace {name}: {err}; kept for the next cleaner")
    if removed:
        done.append(f"removed namespace(s) {', '.join(removed)}")
    restored, gone = [], []
    for number, mask in record.get("irqs", {}).items():
        if not Path(f"/proc/irq/{int(number)}").exists():
            gone.append(number)
            continue
        try:
            wrong = irq.restore_masks({int(number): mask})
        except Exception as err:  # noqa: BLE001
            wrong = {int(number): (mask, f"unwritable ({err})")}
        if wrong:
            left["irqs"][number] = mask
            ((saved, now),) = wrong.values()
            failed.append(f"IRQ {number}: affinity reads {now}, not {saved}; kept for the next "
                          "cleaner")
        else:
            restored.append(number)
    if restored:
        done.append(f"restored the affinity of IRQ(s) {', '.join(restored)} as found")
    if gone:
        done.append(f"IRQ(s) {', '.join(gone)} gone (their driver went): nothing to restore")
    deleted = []
    if record.get("links"):
        try:
            with netlink.IPRoute() as ipr:
                for name in record["links"]:
                    if not ipr.link_lookup(ifname=name):
                        continue
                    try:
                        ipr.link("del", ifname=name)
                        deleted.append(name)
                    except Exception as err:  # noqa: BLE001
                        left["links"].append(name)
                        failed.append(f"link {name}: {err}; kept for the next cleaner")
        except Exception as err:  # noqa: BLE001 - no netlink at all
            left["links"] = [n for n in record["links"] if n not in deleted]
            failed.append(f"link(s) {', '.join(left['links'])}: {err}; kept for the next "
                          "cleaner")
    if deleted:
        done.append(f"removed link(s) {', '.join(deleted)}")
    return done, failed, left


def anything_left(left: dict) -> bool:
    return any(left.get(kind) for kind in ("namespaces", "links", "nics", "irqs"))
