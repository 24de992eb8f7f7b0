"""Undo what killed sessions left behind (their ledgers, :mod:`pytest_pktgen.host.ledger`).

Every session does it when it starts, and ``python -m pytest_pktgen clean`` by hand: NICs
moved into a lab namespace are sent home and restored as they were found, the namespaces
(with the links and pktgen devices inside them) and links made here are deleted, and pktgen
devices a dead run left on this namespace's threads are removed. A ledger written in another
network namespace is left for a cleaner running there.
"""

from __future__ import annotations

import os

from ..host.ledger import RUN_DIR, dead_owners
from ..host.undo import HOME_TIMEOUT_S, anything_left, undo_record
from ..pktgen.proc import Pktgen
from .guard import NamespaceLock, PktgenBusy
from .runner import remove_dead_runs_devices


def clean(run_dir=RUN_DIR, home_timeout: float = HOME_TIMEOUT_S) -> tuple[list[str], bool]:
    """Undo every dead owner's ledger here: one sentence per owner saying what was undone
    (and what could not be), and whether all of it was. It never raises: what cannot be
    undone is said, and stays in that owner's ledger for the next cleaner (each session's),
    which tries it again; a session is never stopped by it."""
    said, complete = [], True
    here = os.stat("/proc/self/ns/net").st_ino
    for record, release in dead_owners(run_dir):
        if record.get("netns_inode") != here:
            release(done=False)  # for a cleaner in the namespace it was written in
            continue
        try:
            done, failed, left = undo_record(record, home_timeout)
        except Exception as err:  # noqa: BLE001 - never stop a session: say it, keep it all
            done, failed, left = [], [f"the cleaner failed ({err!r})"], record
        if anything_left(left):
            release(left={**record, **left})
            failed.append(f"what could not be undone stays in {run_dir}/owner-"
                          f"{record['pid']}-*.json for the next session's cleaner (delete "
                          "that file to give it up)")
        else:
            release()
        complete = complete and not failed
        if done or failed:
            said.append(f"cleaned up after dead process {record['pid']}: "
                        + "; ".join(done + failed))
    try:
        devices = _pktgen_leftovers()
    except Exception as err:  # noqa: BLE001
        devices, complete = f"pktgen devices of dead runs: not removed ({err!r})", False
    return said + ([devices] if devices else []), complete


def _pktgen_leftovers() -> str:
    """pktgen devices a dead run left in this namespace (on a NIC of its own: on links it made,
    deleting them removed the devices too); a live session holding pktgen is left alone."""
    pktgen = Pktgen()
    if not pktgen.devices_here():
        return ""
    lock = NamespaceLock(None, timeout=0)
    try:
        lock.acquire()
    except PktgenBusy:
        return ""
    try:
        return remove_dead_runs_devices(pktgen, lock) if lock.fresh else ""
    finally:
        lock.release()
