"""Safety around pktgen: one user per namespace at a time, and no flooding a management link.

pktgen's start/stop/reset act on every device in a namespace, so two sessions driving one
namespace would stop or remove each other's devices: a run holds an exclusive lock per
namespace (flock on /run/pytest-pktgen/<netns inode>.lock; a second run waits with a message,
then fails clearly). And a run refuses to transmit on a link that carries a default route or
the local address of an established TCP connection (an SSH session, say) unless the device is
explicitly allowed.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
import sys
import time
from pathlib import Path

from . import netdev
from .errors import PktgenConfigError, PktgenError

LOCK_DIR = Path("/run/pytest-pktgen")
TCP_ESTABLISHED = "01"


class PktgenBusy(PktgenError):
    """Another run holds pktgen in this namespace."""


def netns_inode(netns: str | None) -> int:
    path = f"/var/run/netns/{netns}" if netns else "/proc/thread-self/ns/net"
    return os.stat(path).st_ino


class NamespaceLock:
    """An exclusive lock on pktgen in one namespace, for the length of a run. Re-entrant within
    a process (a test holding it may run pktgen several times)."""

    _held: dict[Path, list] = {}  # path -> [fd, depth]: flock is per open file, not per process

    def __init__(self, netns: str | None, timeout: float = 300.0, echo=None):
        self.path = LOCK_DIR / f"netns-{netns_inode(netns)}.lock"
        self.netns, self.timeout = netns, timeout
        self.echo = echo or (lambda text: print(text, file=sys.stderr, flush=True))
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        held = self._held.get(self.path)
        if held:
            held[1] += 1
            self._fd = held[0]
            return
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise PktgenBusy(
                        f"pktgen in namespace {self.netns or '(this one)'} is in use by process "
                        f"{holder} ({self.path}); gave up after {self.timeout:.0f}s") from None
                if not told:
                    self.echo(f"pytest-pktgen: waiting for process {holder} to finish with "
                              f"pktgen in namespace {self.netns or '(this one)'}")
                    told = True
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        self._held[self.path] = [fd, 1]

    def release(self) -> None:
        if self._fd is None:
            return
        self._fd = None
        held = self._held[self.path]
        held[1] -= 1
        if held[1] == 0:
            del self._held[self.path]
            os.ftruncate(held[0], 0)
            fcntl.flock(held[0], fcntl.LOCK_UN)
            os.close(held[0])

    def __enter__(self) -> NamespaceLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def check_not_management(device: str, netdev_name: str, netns: str | None,
                         allowed: frozenset[str]) -> None:
    """Refuse a link with a default route or a live TCP connection's address on it."""
    if netdev_name in allowed:
        return
    with netdev.route(netns=netns) as ipr:
        index = ipr.link_lookup(ifname=netdev_name)[0]
        for route in ipr.get_routes(table=254):
            if route["dst_len"] == 0 and route.get_attr("RTA_OIF") == index:
                raise PktgenConfigError(
                    "device", device, f"a test link: {netdev_name} carries the default route "
                    "(allow it explicitly to flood it anyway)")
        addresses = {ipaddress.ip_address(a.get_attr("IFA_ADDRESS"))
                     for a in ipr.get_addr(index=index)}
    for local in _established_local_addresses(netns):
        if local in addresses:
            raise PktgenConfigError(
                "device", device, f"a test link: {netdev_name} has {local}, the local address "
                "of an established TCP connection, a management link perhaps (allow it "
                "explicitly to flood it anyway)")


def _established_local_addresses(netns: str | None) -> set:
    def read() -> list[str]:
        lines = []
        for name in ("tcp", "tcp6"):
            path = Path("/proc/thread-self/net") / name
            if path.exists():
                lines += path.read_text().splitlines()[1:]
        return lines

    if netns is None:
        lines = read()
    else:
        from .netns import call_in

        lines = call_in(netns, read)
    out = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == TCP_ESTABLISHED:
            out.add(_proc_address(fields[1].split(":")[0]))
    return out


def _proc_address(hex_address: str):
    """/proc/net/tcp{,6} addresses: 32-bit words in host byte order."""
    raw = bytes.fromhex(hex_address)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    packed = struct.pack(f">{len(words)}I", *words)
    family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
    return ipaddress.ip_address(socket.inet_ntop(family, packed))
