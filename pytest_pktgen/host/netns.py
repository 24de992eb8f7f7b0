"""Network namespaces: made with unique names, removed after, and code run inside one.

pktgen is per namespace: its thread and device files belong to a namespace, and ``pgctrl``
acts on the namespace of the writing *thread*. So a :class:`Resident` thread parked inside a
namespace gives a stable ``/proc/<pid>/task/<tid>/net/pktgen`` path to it, and :func:`call_in`
runs one call (a pgctrl write) on a fresh thread that has joined the namespace. The rest of the
process stays where it is.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from . import netlink
from .ledger import ledger

NETNS_DIR = Path("/var/run/netns")
T = TypeVar("T")

NAME_PREFIX = "pg"  # every link and namespace this project makes starts with it
_serial = itertools.count()


def unique_name(prefix: str) -> str:
    """An interface name no other session or xdist worker uses: prefix, pid, serial (<=15)."""
    if not prefix.startswith(NAME_PREFIX):
        raise ValueError(f"name prefixes start with {NAME_PREFIX!r}: {prefix!r}")
    name = f"{prefix}{os.getpid() % 0x100000:x}n{next(_serial)}"
    if len(name) > 15:
        raise ValueError(f"interface name {name!r} is longer than 15 characters")
    return name


def create(prefix: str = "pgns") -> str:
    """A new named namespace (``ip netns`` style) with a name unique to this process."""
    name = unique_name(prefix)
    ledger().add("namespaces", name)  # written down first: a kill in between leaves no orphan
    netlink.netns.create(name)
    return name


def remove(name: str) -> None:
    """Remove a namespace; its virtual links go with it, physical NICs return to init_net."""
    if (NETNS_DIR / name).exists():
        netlink.netns.remove(name)
    ledger().drop("namespaces", name)


def enter(name: str) -> None:
    """Move the calling thread into namespace ``name``; never creates one (a typo fails)."""
    netlink.netns.setns(name, flags=0)


def on_thread(fn: Callable[[], T], name: str, timeout: float | None = None) -> T:
    """Run ``fn()`` on a fresh thread, which it may move to another namespace for good, and
    return its result or raise its exception here; a TimeoutError past ``timeout`` seconds."""
    outcome: dict[str, object] = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = err

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{name} took over {timeout:.0f}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def call_in(name: str, fn: Callable[..., T], *args) -> T:
    """Run ``fn(*args)`` on a new thread inside namespace ``name`` and return its result."""

    def inside() -> T:
        enter(name)
        return fn(*args)

    return on_thread(inside, f"netns-{name}")


class Resident:
    """A thread parked inside a namespace, so its ``/proc`` view of that namespace stays open."""

    def __init__(self, name: str):
        self.name = name
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.tid = 0
        self._thread = threading.Thread(target=self._park, name=f"netns-{name}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error:
            raise self._error

    def _park(self):
        try:
            enter(self.name)
            self.tid = threading.get_native_id()
        except BaseException as err:  # noqa: BLE001 - re-raised in __init__
            self._error = err
        self._ready.set()
        self._stop.wait()

    @property
    def proc_net(self) -> Path:
        return Path(f"/proc/{os.getpid()}/task/{self.tid}/net")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
