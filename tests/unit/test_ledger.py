"""The ledger's liveness rule: a record is a dead owner's exactly when its lock is free."""

from __future__ import annotations

import signal
import subprocess
import sys

from pytest_pktgen.host import ledger

OWNER = """
import sys
from pathlib import Path
from pytest_pktgen.host.ledger import Ledger

book = Ledger(Path(sys.argv[1]))
book.add("namespaces", "pgfake0")
book.add("links", "pgfake1")
book.drop("links", "pgfake1")
book.add("irqs", "24", "3")
assert book.holds("irqs", "24") and not book.holds("irqs", "25")
if sys.argv[2] == "empty":
    book.drop("namespaces", "pgfake0")
    book.drop("irqs", "24")
print("WRITTEN", flush=True)
if sys.argv[2] == "wait":
    sys.stdin.read()
"""


def _owner(tmp_path, how: str) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path), how],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "WRITTEN\n"
    return child


def test_a_live_owner_is_left_alone_and_a_killed_ones_record_is_found(tmp_path):
    child = _owner(tmp_path, "wait")
    assert not ledger.any_dead(tmp_path)
    assert list(ledger.dead_owners(tmp_path)) == []
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert ledger.any_dead(tmp_path)
    found = list(ledger.dead_owners(tmp_path))
    assert [(r["pid"], r["namespaces"], r["links"], r["irqs"]) for r, _ in found] == [
        (child.pid, ["pgfake0"], [], {"24": "3"})]
    found[0][1]()  # release: the record is done with
    assert list(tmp_path.iterdir()) == []


def test_an_owner_that_ends_with_nothing_left_leaves_no_files(tmp_path):
    _owner(tmp_path, "empty").wait()
    assert list(tmp_path.iterdir()) == []
    assert not ledger.any_dead(tmp_path)


def test_a_record_left_for_another_namespace_stays(tmp_path):
    _owner(tmp_path, "exit").wait()  # ends without undoing: like a kill, for the ledger
    (record, release), = ledger.dead_owners(tmp_path)
    release(done=False)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".lock"]
    assert ledger.any_dead(tmp_path)


def test_a_pinned_irq_alone_keeps_the_record(tmp_path):
    """An IRQ's mask is something to undo like a namespace: a ledger listing only it is
    written, and empty again once it is struck off."""
    book = ledger.Ledger(tmp_path)
    book.add("irqs", "31", "00000003")
    assert book.path.exists()
    book.drop("irqs", "31")
    assert not book.path.exists()
