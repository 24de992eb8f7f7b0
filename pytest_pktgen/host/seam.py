"""Where things run: one seam for *here*, *in a network namespace* and *on another machine*.

Whatever acts on a host goes through a :class:`Host`: run a callable there, read or write a file
as that host sees it, open netlink there, run a program there, and ask whether it still exists.
:func:`on` gives the host for a namespace name (None: the machine's own) on a machine (None:
this one; else a name :func:`register` gave a machine reached over SSH,
:mod:`pytest_pktgen.host.ssh`). A namespace is reached from a thread that joins it (see
:mod:`pytest_pktgen.host.netns`): a path it reads must name the thread's own view,
``/proc/thread-self/net/...``, never ``/proc/net`` (the process's).

What must live where it acts (a run, a counter, a namespace's resident thread) is made there
with :func:`new_on`: the object itself here, a proxy to it kept by that machine's agent there.
Only module-level functions and plain values cross to another machine.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from . import netlink
from .netns import NETNS_DIR, call_in

T = TypeVar("T")


class Host(Protocol):
    """What the layers above need of a place where things run."""

    netns: str | None  # the network namespace's name; None: this process's own

    def call(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` run there; its value, or its exception raised here."""

    def read_text(self, path: str | Path) -> str: ...

    def write_text(self, path: str | Path, text: str) -> None: ...

    def netlink(self) -> netlink.IPRoute:
        """An IPRoute socket bound there, to close after use (a ``with`` block)."""

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """A program run there, as :func:`subprocess.run` runs it."""

    @property
    def exists(self) -> bool:
        """Whether the host is still there (a namespace may be gone, its links with it)."""

    def namespace_id(self) -> int:
        """What tells its network namespace from every other one of the machine (an inode)."""


class Local:
    """This process's own network namespace."""

    netns = None

    def call(self, fn: Callable[..., T], *args) -> T:
        return fn(*args)

    def read_text(self, path: str | Path) -> str:
        return Path(path).read_text()

    def write_text(self, path: str | Path, text: str) -> None:
        Path(path).write_text(text)

    def netlink(self) -> netlink.IPRoute:
        return netlink.IPRoute()

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(argv, **kwargs)

    @property
    def exists(self) -> bool:
        return True

    def namespace_id(self) -> int:
        return os.stat("/proc/thread-self/ns/net").st_ino

    def __repr__(self) -> str:
        return "Local()"


class Namespace:
    """A named network namespace (``ip netns`` style) of this machine, never created here."""

    def __init__(self, name: str):
        self.netns = name

    def call(self, fn: Callable[..., T], *args) -> T:
        return call_in(self.netns, fn, *args)

    def read_text(self, path: str | Path) -> str:
        return self.call(Path(path).read_text)

    def write_text(self, path: str | Path, text: str) -> None:
        self.call(Path(path).write_text, text)

    def netlink(self) -> netlink.IPRoute:
        return netlink.IPRoute(netns=self.netns, flags=0)  # flags=0: never create it

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        # a child forked from a thread inside the namespace starts in it
        return self.call(lambda: subprocess.run(argv, **kwargs))

    @property
    def exists(self) -> bool:
        return (NETNS_DIR / self.netns).exists()

    def namespace_id(self) -> int:
        return os.stat(NETNS_DIR / self.netns).st_ino

    def __repr__(self) -> str:
        return f"Namespace({self.netns!r})"


LOCAL = Local()
_machines: dict[str, object] = {}  # name -> a connected machine (an SshMachine)


def register(name: str, machine) -> None:
    """Make a connected machine reachable by its name (``on(netns, name)``)."""
    _machines[name] = machine


def forget(name: str) -> None:
    _machines.pop(name, None)


def machine(name: str):
    try:
        return _machines[name]
    except KeyError:
        known = ", ".join(sorted(_machines)) or "none (no --pktgen-host given)"
        raise LookupError(f"no host named {name!r}: the hosts are {known}") from None


def on(netns: str | None, host: str | None = None) -> Host:
    """The host for a namespace name (None: the machine's own) on machine ``host`` (None:
    this one)."""
    if host is not None:
        return machine(host).on(netns)
    return LOCAL if netns is None else Namespace(netns)


def new_on(host: str | None, factory: Callable[..., T], *args, **kwargs) -> T:
    """``factory(*args, **kwargs)`` made on machine ``host``: here the object itself, on
    another machine a proxy whose attributes and methods are the object's there."""
    if host is None:
        return factory(*args, **kwargs)
    return machine(host).new(factory, *args, **kwargs)
