"""What this process made or changed that must not outlive it: namespaces, links, NICs moved
away, IRQs pinned.

Undo runs on close, on errors, on Ctrl-C and SIGTERM; a process killed with SIGKILL (or by
the OOM killer, or with the SSH session it ran in) runs none of it. So every process that makes
something keeps a ledger in ``/run/pytest-pktgen``: ``owner-<pid>-<start>.json`` says what it
made (a namespace is written down before it is made, a NIC with its saved state before it is
moved), and ``owner-<pid>-<start>.lock`` is flock()ed for the life of the process. The kernel
drops that lock when the process dies, however it dies: whoever gets the lock then knows the
owner is gone, and undoes what its ledger lists (:mod:`pytest_pktgen.run.leftovers`).
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import threading
from pathlib import Path

RUN_DIR = Path("/run/pytest-pktgen")


KINDS = ("namespaces", "links", "nics", "irqs")
MAPS = ("nics", "irqs")  # kinds listed by name with a value


class Ledger:
    """This process's record: ``namespaces``, ``links`` (made in its own namespace), ``nics``
    (name -> {"netns": where it went, "state": its saved NicState}) and ``irqs`` (number ->
    the smp_affinity mask it had before this process pinned it)."""

    def __init__(self, run_dir: Path = RUN_DIR):
        start = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]
        stem = f"owner-{os.getpid()}-{start}"
        self.path, self.lock_path = run_dir / f"{stem}.json", run_dir / f"{stem}.lock"
        self.record: dict = {"pid": os.getpid(), "netns_inode": os.stat("/proc/self/ns/net").st_ino,
                             "namespaces": [], "links": [], "nics": {}, "irqs": {}}
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._pid = os.getpid()

    def _open(self) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # held until this process ends
            atexit.register(self._close)

    def _close(self) -> None:
        """At a normal exit with nothing left undone: no lock file for the next session to
        take for a dead owner's."""
        with self._mutex:
            if self._pid == os.getpid() and not self.path.exists():
                self.lock_path.unlink(missing_ok=True)

    def _write(self) -> None:
        empty = not any(self.record[k] for k in KINDS)
        if empty:
            self.path.unlink(missing_ok=True)
            return
        self._open()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record))
        tmp.replace(self.path)  # a kill mid-write leaves the last whole record

    def add(self, kind: str, name: str, value=None) -> None:
        """Write down ``name`` (a namespace, a link, a NIC or an IRQ with ``value``) before
        making or changing it."""
        with self._mutex:
            if kind in MAPS:
                self.record[kind][name] = value
            elif name not in self.record[kind]:
                self.record[kind].append(name)
            self._write()

    def keep_only(self, left: dict) -> None:
        """What could not be undone stays listed (for the next cleaner, once this process is
        gone); the rest is struck off."""
        with self._mutex:
            self.record.update({kind: left.get(kind, type(self.record[kind])())
                                for kind in KINDS})
            self._write()

    def clear(self) -> None:
        """Everything listed is undone (or given up): an empty record."""
        with self._mutex:
            self.record.update(namespaces=[], links=[], nics={}, irqs={})
            self._write()

    def holds(self, kind: str, name: str) -> bool:
        with self._mutex:
            return name in self.record[kind]

    def drop(self, kind: str, name: str) -> None:
        """``name`` is undone: strike it off."""
        with self._mutex:
            if kind in MAPS:
                self.record[kind].pop(name, None)
            elif name in self.record[kind]:
                self.record[kind].remove(name)
            self._write()


_ledger: Ledger | None = None
_guard = threading.Lock()


def ledger() -> Ledger:
    """This process's ledger (a forked child gets its own)."""
    global _ledger
    with _guard:
        if _ledger is None or _ledger._pid != os.getpid():
            _ledger = Ledger()
        return _ledger


def any_dead(run_dir: Path = RUN_DIR) -> bool:
    """Whether a dead owner's ledger is there (cheap: no netlink, for every session start)."""
    for lock_path in run_dir.glob("owner-*.lock") if run_dir.is_dir() else ():
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            continue
        finally:
            os.close(fd)
    return False


def dead_owners(run_dir: Path = RUN_DIR):
    """Yield (record, release) for each ledger whose owner is gone, its lock held by us until
    ``release()`` (which deletes the ledger; ``release(done=False)`` leaves it for another
    cleaner; ``release(left=RECORD)`` keeps RECORD, what could not be undone, for the next):
    two cleaners never undo the same one."""
    if not run_dir.is_dir():
        return
    for lock_path in sorted(run_dir.glob("owner-*.lock")):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # another cleaner finished it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # its owner lives (or another cleaner has it)
            continue
        path = lock_path.with_suffix(".json")
        try:
            record = json.loads(path.read_text()) if path.exists() else None
        except ValueError:
            record = None

        def release(done=True, left=None, fd=fd, path=path, lock_path=lock_path):
            if left is not None:  # what could not be undone, for the next cleaner
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(left))
                tmp.replace(path)
            elif done:
                path.unlink(missing_ok=True)
                lock_path.unlink(missing_ok=True)
            os.close(fd)

        if record is None:
            release()
            continue
        yield record, release
