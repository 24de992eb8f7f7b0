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
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import host
from ..errors import PktgenConfigError, PktgenError
from ..host import netdev
from ..host.ledger import RUN_DIR

LOCK_DIR = RUN_DIR
TCP_ESTABLISHED = "01"
RTN_UNICAST = 1


class PktgenBusy(PktgenError):
    """Another run holds pktgen in this namespace."""


class NamespaceLock:
    """An exclusive lock on pktgen in one namespace, for the length of a run. Re-entrant within
    a process (a test holding it may run pktgen several times)."""

    _held: dict[Path, list] = {}  # path -> [fd, depth]: flock is per open file, not per process

    def __init__(self, netns: str | None, timeout: float = 300.0, echo=None):
        self.path = LOCK_DIR / f"netns-{host.on(netns).namespace_id()}.lock"
        self.netns, self.timeout = netns, timeout
        self.echo = echo or (lambda text: print(text, file=sys.stderr, flush=True))
        self._fd: int | None = None
        # taken afresh (no run of this process held it): pktgen devices found in the namespace
        # then are a dead run's; ``left_by`` is the process that held the lock last, if it said
        self.fresh = False
        self.left_by = ""

    def acquire(self) -> None:
        if self._fd is not None:
            return
        held = self._held.get(self.path)
        if held:
            held[1] += 1
            self._fd = held[0]
            self.fresh = False
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
        self.left_by = os.pread(fd, 64, 0).decode(errors="replace").strip()
        self.fresh = True
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


class ModuleUse:
    """The sessions using the pktgen module hold a shared lock while they do; the last one to
    let go unloads the module if a session of ours loaded it (a marker file says so): a
    session ending never pulls pktgen from under another one, nor leaves it loaded behind."""

    LOCK = LOCK_DIR / "module.lock"
    MARK = LOCK_DIR / "module-loaded-by-pytest-pktgen"

    def __init__(self):
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def loaded_it(self) -> None:
        """This session loaded the module: the last session out unloads it."""
        self.MARK.touch()

    def release(self, unload) -> bool:
        """Let go; if no other session uses pktgen now and ours loaded it, ``unload()`` it.
        True if it was unloaded. (Each session lets go before it asks for the exclusive lock,
        so of two ending together the later one finds the other gone.)"""
        if self._fd is None:
            return False
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # another session still uses pktgen: the last one unloads
            if not self.MARK.exists():
                return False
            unload()
            self.MARK.unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)


def check_not_management(device: str, netdev_name: str, netns: str | None,
                         allowed: frozenset[str] | Sequence[str]) -> None:
    """Refuse a link that looks like a management link (see :func:`management_reason`),
    unless ``allowed`` names it."""
    if netdev_name in allowed:
        return
    reason = management_reason(netdev_name, netns)
    if reason:
        named = device.split("@")[0] if ":" in device else netdev_name  # HOST:IFNAME there
        raise PktgenConfigError(
            "device", device, f"a test link: {reason}, a management link perhaps (allow it "
            f"explicitly to flood it anyway: --pktgen-allow-dev {named}, or "
            f"allow_devices=[{netdev_name!r}])")


def allowed_on(allow: Iterable[str], host: str | None) -> tuple[str, ...]:
    """The interface names ``allow`` (``--pktgen-allow-dev``'s) lets be flooded on machine
    ``host`` (None: this one): ``HOST:IFNAME`` on that host only, a bare name on this machine
    only, so allowing one machine's eth0 never allows another's."""
    out = []
    for name in allow:
        where, _, ifname = name.rpartition(":")
        if (where or None) == host:
            out.append(ifname)
    return tuple(out)


def management_reason(ifname: str, netns: str | None = None) -> str | None:
    """Why flooding (or moving) ``ifname`` could cut this host's management traffic, or None:
    it (or a device stacked with it: a VLAN or macvlan on it, its bond, team, bridge or VRF,
    the link below it) carries a default route in any routing table, IPv4 or IPv6, as the
    route's device or as a multipath next hop; is a next hop of a multipath route beside
    another device (a move deletes the whole route, the other's hop too); a default route
    goes by a nexthop object whose devices the kernel does not say; or it has the local
    address of an established TCP connection (IPv4 ones on dual-stack sockets included)."""
    with netdev.route(netns=netns) as ipr:
        links = {link["index"]: link for link in ipr.get_links()}
        index = ipr.link_lookup(ifname=ifname)
        if not index:
            raise LookupError(f"no network device {ifname!r}")
        related = _stacked_with(index[0], links)
        for family, version in ((socket.AF_INET, "IPv4"), (socket.AF_INET6, "IPv6")):
            for route in ipr.route("dump", family=family):
                if route["type"] != RTN_UNICAST:
                    continue
                hops = [route.get_attr("RTA_OIF")]
                hops += [hop.get("oif") for hop in route.get_attr("RTA_MULTIPATH") or []]
                hops = [h for h in hops if h]
                via = next((related[h] for h in hops if h in related), None)
                table = route.get_attr("RTA_TABLE") or route["table"]
                name = {254: "main", 255: "local", 253: "default"}.get(table, table)
                if route["dst_len"] == 0 and via is not None:
                    return f"{via} the {version} default route (table {name})"
                if route["dst_len"] == 0 and not hops and route.get_attr("RTA_NH_ID"):
                    # a route by nexthop object whose devices the dump does not say
                    # (net.ipv4.nexthop_compat_mode=0; pyroute2 reads no nexthop objects)
                    return (f"the {version} default route (table {name}) goes by nexthop "
                            f"object {route.get_attr('RTA_NH_ID')}, whose devices cannot be "
                            f"read here (nexthop_compat_mode=0), and {ifname} may be one")
                others = [links[h].get_attr("IFLA_IFNAME") for h in hops
                          if h not in related and h in links]
                if via is not None and others:  # a move deletes the whole route
                    dst = f"{route.get_attr('RTA_DST')}/{route['dst_len']}"
                    return (f"{via} a next hop of the {version} route {dst} (table {name}) "
                            f"beside {', '.join(sorted(set(others)))}: moving it takes the "
                            "whole route away, their hops too")
        addresses = {}
        for address in ipr.get_addr():
            if address["index"] in related:
                ip = ipaddress.ip_address(address.get_attr("IFA_ADDRESS"))
                addresses[ip] = related[address["index"]]
    for local in sorted(_established_local_addresses(netns), key=str):
        if local in addresses:
            return (f"{addresses[local].replace('carries', 'has')} {local}, the local address "
                    "of an established TCP connection")
    return None


def _stacked_with(index: int, links: dict) -> dict[int, str]:
    """Every device stacked with link ``index`` (through upper/lower links and masters, in
    this namespace), each with how to say what it carries: "eth1 carries", "eth1 is stacked
    with br0, which carries"."""
    def name(i: int) -> str:
        return links[i].get_attr("IFLA_IFNAME")

    def neighbours(i: int):
        link = links[i]
        if link.get_attr("IFLA_LINK_NETNSID") is None:
            lower = link.get_attr("IFLA_LINK")
            if lower in links and lower != i:
                yield lower
        master = link.get_attr("IFLA_MASTER")
        if master in links:
            yield master
        for other, olink in links.items():
            if other != i and (olink.get_attr("IFLA_MASTER") == i or (
                    olink.get_attr("IFLA_LINK") == i
                    and olink.get_attr("IFLA_LINK_NETNSID") is None)):
                yield other

    own = name(index)
    related = {index: f"{own} carries"}
    queue = [index]
    while queue:
        for other in neighbours(queue.pop(0)):
            if other not in related:
                related[other] = f"{own} is stacked with {name(other)}, which carries"
                queue.append(other)
    return related


def _established_local_addresses(netns: str | None) -> set:
    def read() -> list[str]:
        lines = []
        for name in ("tcp", "tcp6"):
            path = Path("/proc/thread-self/net") / name
            if path.exists():
                lines += path.read_text().splitlines()[1:]
        return lines

    lines = host.on(netns).call(read)
    out = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == TCP_ESTABLISHED:
            address = _proc_address(fields[1].split(":")[0])
            # an IPv4 connection on a dual-stack socket shows as ::ffff:a.b.c.d in tcp6
            mapped = getattr(address, "ipv4_mapped", None)
            out.add(mapped or address)
    return out


def _proc_address(hex_address: str):
    """/proc/net/tcp{,6} addresses: 32-bit words in host byte order."""
    raw = bytes.fromhex(hex_address)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    packed = struct.pack(f">{len(words)}I", *words)
    family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
    return ipaddress.ip_address(socket.inet_ntop(family, packed))
