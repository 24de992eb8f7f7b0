"""Receive-side counting: what arrived, by interchangeable backends.

pktgen only transmits; "sent 10 million" says nothing about what the driver, bridge or router
delivered. A :class:`RxCounter` counts at the sink over a run:

- ``ifstats``: the interface's counters, every frame the driver took in;
- ``tc``: an ingress qdisc with u32 filters on UDP ``port`` (the paper's suggested
  alternative), optionally dropping;
- ``nft``: an nftables netdev-ingress counter on UDP ``port`` (optionally dropping);
- ``kmod``: the pgrx module of ``kmod/``, pktgen's port-9 packets at the sink's netdev ingress
  (before the IP layer; at PRE_ROUTING with ``hook="prerouting"``), optionally dropped, with
  loss, duplicates and reordering per stream and every packet's latency from pktgen's header
  (:mod:`~pytest_pktgen.lab.latency`);
- ``patched``: the counter of the paper's ip_input.c patch (``patches/``), in the kernel built
  from it (``net.ipv4.pktgen_rcv``, ``PktgenRcv``/``PktgenDrop`` in /proc/net/netstat).

Bytes are counted from the Ethernet header on (``ifstats``, ``kmod``) or from the IP header on
(``tc``, ``nft``); ``patched`` counts packets only. :attr:`RxCount.bytes_from` says which.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from .. import host
from ..errors import PktgenConfigError, PktgenRunError
from ..host import netdev, netlink
from ..pktgen.proc import write_command
from ..run.runner import RunResult
from .latency import EVERY_MAX, Latency, check_every, merged, parse_buckets

KMOD_DIR = Path(__file__).resolve().parents[2] / "kmod"
KMOD_NAME = "pgrx"
KMOD_KO = KMOD_DIR / f"{KMOD_NAME}.ko"
# Frames still in flight when pktgen stops are not loss: a virtio cable's QEMU queue holds up
# to 10,000 frames the receiving guest has not taken yet, a veth peer's backlog up to
# netdev_max_backlog. A count is final when it reaches what was sent, or stops growing.
SETTLE_QUIET_S = 0.3
SETTLE_MAX_S = 15.0


def settle(read: Callable[[], int], expected: int | None = None,
           quiet: float = SETTLE_QUIET_S, longest: float = SETTLE_MAX_S) -> int:
    """``read()`` again until it returns ``expected`` or has not changed for ``quiet``
    seconds (at most ``longest``); the last value."""
    value = read()
    changed = started = time.monotonic()
    while value != expected:
        now = time.monotonic()
        if now - changed >= quiet or now - started >= longest:
            break
        time.sleep(0.05)
        again = read()
        if again != value:
            value, changed = again, time.monotonic()
    return value


@dataclass(frozen=True)
class Stream:
    """One sender's sequence numbers as pgrx saw them (per ingress device, source MAC and UDP
    source port: the plugin gives each pktgen thread of a NIC a source port of its own)."""

    ifindex: int
    mac: str
    sport: int
    first: int
    highest: int
    received: int
    unique: int
    duplicates: int
    late: int
    beyond_window: int

    def lost(self, repeat: int = 1, sent: int | None = None) -> int:
        """Sequence numbers never seen. pktgen numbers from 1 at each start; ``repeat`` is its
        clone_skb or burst (each header goes out that many times and the number then jumps by
        it); with ``sent`` (pktgen's count) a loss at the very end counts too."""
        repeat = max(repeat, 1)
        expected = -(-sent // repeat) if sent is not None else (self.highest - 1) // repeat + 1
        return expected - self.unique

    def duplicates_beyond(self, repeat: int = 1) -> int:
        """Duplicates beyond pktgen's own copies: with clone_skb or burst (``repeat``) each
        header arrives ``repeat`` times by design, and only more than that is a duplicate."""
        return max(0, self.duplicates - (max(repeat, 1) - 1) * self.unique)


# the features under which GRO merges UDP frames that go to no socket (pktgen's), if rx-gro is on
UDP_GRO_FEATURES = ("rx-udp-gro-forwarding", "rx-gro-list")


def udp_gro(ifname: str, netns: str | None) -> list[str]:
    """The features of ``ifname`` under which GRO merges pktgen's frames (none: it does not);
    a link without ethtool's features (none to merge with) has none."""

    def on() -> list[str]:
        try:
            features = netlink.IoctlEthtool(ifname).get_features()
        except OSError:
            return []
        if "rx-gro" in features and not features["rx-gro"]:
            return []
        return [name for name in UDP_GRO_FEATURES if name in features and features[name]]

    return host.on(netns).call(on)


def refuse_gro(backend: str, ifname: str, netns: str | None) -> None:
    """Refuse a backend that counts skbs where GRO merges pktgen's frames into fewer of them,
    before it is set up."""
    merging = udp_gro(ifname, netns) if BACKENDS[backend].counts_skbs else []
    if merging:
        raise PktgenRunError(
            f"the {backend} counter counts skbs, and GRO merges pktgen's UDP frames into fewer "
            f"on {ifname} ({', '.join(merging)} on): turn {' and '.join(merging)} off on it, "
            "or count with kmod (pgrx counts the frames a merged skb carries) or ifstats (the "
            "driver's frames)")


@dataclass(frozen=True)
class StreamAccount:
    """One pktgen device's packets as pgrx saw them: its streams together (one per UDP source
    port it sends from: flows are ports), counted in sequence numbers (a header sent
    ``clone_skb`` or ``burst`` times is one), over one run or several added up."""

    sent: int = 0  # sequence numbers the device sent
    received: int = 0  # packets that arrived
    lost: int = 0  # sequence numbers never seen
    duplicates: int = 0  # copies beyond pktgen's own (clone_skb, burst)
    late: int = 0  # arrived after a higher number (reordered)
    streams: int = 0  # pgrx streams it sent as

    def __add__(self, other: StreamAccount) -> StreamAccount:
        return StreamAccount(*(getattr(self, f.name) + getattr(other, f.name)
                               for f in fields(self)))


def account(streams: Sequence[Stream], mac: str, sports: range, sent: int,
            repeat: int = 1) -> StreamAccount:
    """The account of the device that sent ``sent`` packets from ``mac`` and UDP source ports
    ``sports``, each header ``repeat`` times. Streams of another source MAC are its own too
    when none carries its MAC (a router in between rewrites it)."""
    repeat = max(repeat, 1)
    mac = mac.lower()
    by_mac = any(s.mac.lower() == mac for s in streams)
    mine = [s for s in streams if s.sport in sports and (not by_mac or s.mac.lower() == mac)]
    numbers = -(-sent // repeat)
    unique = sum(s.unique for s in mine)
    return StreamAccount(numbers, sum(s.received for s in mine), numbers - unique,
                         sum(s.duplicates_beyond(repeat) for s in mine),
                         sum(s.late for s in mine), len(mine))


@dataclass(frozen=True)
class RxCount:
    """What a backend saw over a run."""

    backend: str
    packets: int
    bytes: int | None
    dropped: int = 0
    pktgen: int | None = None  # packets with pktgen's magic (kmod)
    streams: list[Stream] = field(default_factory=list)
    latency: Latency | None = None  # every pktgen packet's (kmod)
    bytes_from: str = "ethernet"  # "ethernet", "ip" or "" (no bytes)
    other: dict[str, int] = field(default_factory=dict)  # kmod: other, fragments, gro, ...


def summed(counts: Sequence[RxCount]) -> RxCount:
    """What one backend saw at several sinks over one run (several generators' each): counts
    added, streams side by side, latencies merged."""
    def total(values):
        values = list(values)
        return None if any(v is None for v in values) else sum(values)

    other: dict[str, int] = {}
    for count in counts:
        for key, value in count.other.items():
            other[key] = other.get(key, 0) + value
    return RxCount(counts[0].backend, sum(c.packets for c in counts),
                   total(c.bytes for c in counts), sum(c.dropped for c in counts),
                   total(c.pktgen for c in counts), [s for c in counts for s in c.streams],
                   merged(c.latency for c in counts), counts[0].bytes_from, other)


@dataclass
class CountedResult(RunResult):
    """A run and what each receive backend counted at its sink over it
    (:meth:`~pytest_pktgen.lab.topology.NetnsTopology.run` with ``rx=``)."""

    received: dict[str, RxCount] = field(default_factory=dict)

    @classmethod
    def of(cls, result: RunResult, received: dict[str, RxCount]) -> CountedResult:
        return cls(**{f.name: getattr(result, f.name) for f in fields(RunResult)},
                   received=received)

    def loss(self, backend: str | None = None) -> int:
        """Packets offered but not counted by a receive backend (the only one, if not named):
        frames the driver refused (``errors``) are lost frames too, never hidden."""
        if not self.received:
            raise ValueError("nothing was counted at a receiver: run with rx counters")
        if backend is None:
            if len(self.received) != 1:
                raise ValueError(f"name one of the backends {sorted(self.received)}")
            backend = next(iter(self.received))
        return self.offered - self.received[backend].packets


def _check_port(port: object) -> int:
    """A UDP port for the port-filtering backends (pktgen's default destination port is 9)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r}: allowed 1..65535")
    return port


class RxCounter:
    """Counts what arrives at ``endpoint`` between :meth:`reset` and :meth:`read`."""

    backend = "base"
    drop = False  # whether it drops what it counts (the backends that can: ``drop=True``)
    # counts an skb as one: a GRO-merged one would be miscounted (ifstats counts frames,
    # before GRO; pgrx counts the segments an skb carries)
    counts_skbs = False

    def __init__(self, ifname: str, netns: str | None):
        self.ifname = ifname
        self.netns = netns
        self.host = host.on(netns)

    def reset(self) -> None:
        raise NotImplementedError

    def read(self) -> RxCount:
        raise NotImplementedError

    def sample_latency(self, every: int) -> None:
        """Sample latency at one sequence number in ``every`` from now on: only pgrx measures
        latency, the other counters have nothing to sample."""

    def settled(self, sent: int | None = None) -> RxCount:
        """:meth:`read` once nothing more is in flight (see :func:`settle`): at once when
        ``sent`` frames have arrived."""
        last: list[RxCount] = []

        def packets() -> int:
            last[:] = [self.read()]
            return last[0].packets

        settle(packets, sent, quiet=self.quiet)
        return last[0]

    closed = False
    quiet = SETTLE_QUIET_S  # how long a count must stand still to be final (:func:`settle`)

    def close(self) -> None:
        """Undo whatever the backend installed (idempotent)."""
        self._undo()
        self.closed = True

    def _undo(self) -> None:
        """What :meth:`close` undoes: each backend its own."""


class IfStatsCounter(RxCounter):
    """The sink interface's own counters: every frame the driver took in."""

    backend = "ifstats"

    def __init__(self, ifname: str, netns: str | None):
        super().__init__(ifname, netns)
        # a driver that refreshes its counters every so often (bnxt: about 1 s) holds a count
        # still for that long while frames still come: settle across two refreshes
        refresh = netdev.stats_refresh_s(ifname, netns)
        if refresh:
            self.quiet = max(SETTLE_QUIET_S, 2 * refresh + 0.1)

    def reset(self) -> None:
        self._base = netdev.link_stats(self.ifname, netns=self.netns)

    def read(self) -> RxCount:
        delta = netdev.link_stats(self.ifname, netns=self.netns) - self._base
        return RxCount(self.backend, delta.rx_packets, delta.rx_bytes, delta.rx_dropped)


PGRX_PROC = "/proc/thread-self/net/pgrx"
# where pgrx counts: at the sink's netdev ingress (before ip_rcv: a dropped frame costs no IP
# layer) or at PRE_ROUTING (after ip_rcv's checks, every device of the namespace)
KMOD_HOOKS = ("ingress", "prerouting")


def _pgrx_write(text: str) -> str | None:
    """Write one command to this namespace's pgrx; None, or why pgrx refused it."""
    try:
        fd = os.open(PGRX_PROC, os.O_WRONLY)
    except OSError as err:
        return f"{PGRX_PROC}: {os.strerror(err.errno)} (pgrx not loaded?)"
    try:
        os.write(fd, (text + "\n").encode())
    except OSError as err:
        return f"pgrx refused {text!r}: {os.strerror(err.errno)}"
    finally:
        os.close(fd)
    return None


def _check_every(every: object) -> int:
    """A counter's latency sample: a number (a measurement turns ``"auto"`` into one by its
    rate)."""
    if check_every(every) == "auto":
        raise PktgenConfigError("latency_every", every, "0 (none) or one sequence number in "
                                f"N, 1 to {EVERY_MAX}: a measurement turns auto into one")
    return every


class KmodCounter(RxCounter):
    """The pgrx module's per-namespace counters of pktgen packets (UDP ``port``), at the sink
    device's netdev ingress (``hook="ingress"``, the default: before the IP layer, so a dropped
    frame costs the sink no ip_rcv) or at PRE_ROUTING (``hook="prerouting"``: every device of
    the namespace, after ip_rcv's checks). Where the ingress hook cannot be had (a pgrx loaded
    from an older build, a kernel without netfilter ingress) it counts at PRE_ROUTING, and
    :attr:`hook_error` says why; :attr:`hook` is where it counts. It samples latency at one
    sequence number in ``latency_every`` (1: every one; see
    :func:`pytest_pktgen.lab.latency.sampled`); what a read says is what pgrx did."""

    backend = "kmod"

    def __init__(self, ifname: str, netns: str | None, port: int = 9, drop: bool = False,
                 hook: str = "ingress", latency_every: int = 1):
        if hook not in KMOD_HOOKS:
            raise ValueError(f"hook={hook!r}: pgrx counts at {' or '.join(KMOD_HOOKS)}")
        _check_every(latency_every)
        super().__init__(ifname, netns)
        self.port = _check_port(port)
        self.drop = drop
        self.hook, self.hook_error = "prerouting", None
        self._command(f"port {port}")
        self._command(f"drop {int(drop)}")
        self.sample_latency(latency_every)
        if hook == "ingress":
            self.hook_error = self._hook_command("add")
            if self.hook_error is None:
                self.hook = "ingress"

    def _command(self, text: str) -> None:
        self.host.call(lambda: write_command(PGRX_PROC, text, check=False))

    def _hook_command(self, verb: str) -> str | None:
        return self.host.call(_pgrx_write, f"ingress {verb} {self.ifname}")

    def set_hook(self, hook: str) -> None:
        """Count at the sink device's ingress or at PRE_ROUTING (``hook``) from now on; a
        RuntimeError says why pgrx refused."""
        if hook not in KMOD_HOOKS:
            raise ValueError(f"hook={hook!r}: pgrx counts at {' or '.join(KMOD_HOOKS)}")
        if hook != self.hook:
            said = self._hook_command("add" if hook == "ingress" else "del")
            if said is not None:
                raise RuntimeError(said)
            self.hook = hook

    def sample_latency(self, every: int) -> None:
        """One sequence number in ``every`` from now on, in the whole namespace (as ``drop``;
        a pgrx without sampling, an older build, samples each one: its reads say so)."""
        self.host.call(_pgrx_write, f"latency {_check_every(every)}")

    def reset(self) -> None:
        self._command("reset")

    def raw(self) -> str:
        return self.host.read_text(PGRX_PROC)

    def read(self) -> RxCount:
        return parse_pgrx(self.raw())

    def _undo(self) -> None:
        if self.host.exists:
            self._command("drop 0")
            self.sample_latency(1)  # pgrx's default
            if self.hook == "ingress":  # gone already if the device left the namespace
                self._hook_command("del")


def parse_pgrx(text: str) -> RxCount:
    """Parse /proc/net/pgrx."""
    values: dict[str, int] = {}
    streams = []
    buckets: dict[int, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key == "stream":
            fields = dict(item.split("=", 1) for item in rest.split())
            streams.append(Stream(int(fields["ifindex"]), fields["mac"],
                                  *(int(fields[k]) for k in ("sport", "first", "highest",
                                                             "received", "unique",
                                                             "duplicates", "late",
                                                             "beyond_window"))))
        elif key == "latency_buckets":
            sub_bits, buckets = parse_buckets(rest)
            if sub_bits != 8:
                raise ValueError(f"pgrx's latency buckets have {sub_bits} sub-bucket bits; "
                                 "this plugin reads 8 (an older or newer kmod/pgrx.c?)")
        elif re.fullmatch(r"\d+", rest.strip()):
            values[key] = int(rest)
    latency = Latency(values.get("latency_samples", 0), values.get("latency_min_us", 0),
                      values.get("latency_max_us", 0), values.get("latency_sum_us", 0),
                      values.get("latency_future", 0), buckets,
                      values.get("latency_every", 1))  # an older pgrx samples each number
    other = {k: values.get(k, 0) for k in ("other", "fragments", "gro", "streams_overflow")}
    return RxCount("kmod", values["packets"], values["bytes"], values.get("dropped", 0),
                   values.get("pktgen"), streams, latency, other=other)


# --- the module ---------------------------------------------------------------------------

def _vermagic(ko: Path) -> str:
    modinfo = shutil.which("modinfo") or "/sbin/modinfo"
    out = subprocess.run([modinfo, "-F", "vermagic", str(ko)], capture_output=True, text=True)
    return out.stdout.split()[0] if out.stdout.strip() else ""


def build_kmod(release: str) -> Path:
    """Build kmod/pgrx.ko with kbuild for ``release`` unless an up-to-date one is there."""
    ko = KMOD_KO
    source = KMOD_DIR / f"{KMOD_NAME}.c"
    if ko.exists() and ko.stat().st_mtime >= source.stat().st_mtime and _vermagic(ko) == release:
        return ko
    build = Path("/lib/modules") / release / "build"
    if not build.exists():
        raise RuntimeError(f"no kernel headers for {release} (apt-get install "
                           f"linux-headers-{release}) to build {source}")
    proc = subprocess.run(["make", "-C", str(KMOD_DIR), f"KVER={release}"], capture_output=True,
                          text=True)
    if proc.returncode != 0 or _vermagic(ko) != release:
        raise RuntimeError(f"building {ko} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return ko


def kmod_sources() -> dict[str, str]:
    """pgrx's source and kbuild Makefile, to build it on another machine."""
    return {name: (KMOD_DIR / name).read_text() for name in (f"{KMOD_NAME}.c", "Makefile")}


def build_kmod_from(sources: dict[str, str], release: str) -> bytes:
    """pgrx.ko built with kbuild from ``sources`` for ``release`` in a scratch directory of
    this machine (another host's agent runs it there, with that host's headers)."""
    with tempfile.TemporaryDirectory(prefix="pytest-pktgen-pgrx-") as where:
        for name, text in sources.items():
            (Path(where) / name).write_text(text)
        build = Path("/lib/modules") / release / "build"
        if not build.exists():
            raise RuntimeError(f"no kernel headers for {release} here (apt-get install "
                               f"linux-headers-{release}) to build pgrx")
        proc = subprocess.run(["make", "-C", where, f"KVER={release}"], capture_output=True,
                              text=True)
        ko = Path(where) / f"{KMOD_NAME}.ko"
        if proc.returncode != 0 or not ko.exists():
            raise RuntimeError(f"building pgrx for {release} failed:\n"
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return ko.read_bytes()


def load_kmod_image(image: bytes) -> bool:
    """insmod pgrx from its bytes (sent from another machine); True if this call loaded it."""
    if kmod_loaded():
        return False
    insmod = shutil.which("insmod") or "/sbin/insmod"
    fd, name = tempfile.mkstemp(prefix="pgrx-", suffix=".ko")
    try:
        with os.fdopen(fd, "wb") as ko:  # closed before insmod: a file open for writing is
            ko.write(image)              # refused (ETXTBSY)
        proc = subprocess.run([insmod, name], capture_output=True, text=True)
    finally:
        os.unlink(name)
    if proc.returncode != 0:
        raise RuntimeError(f"insmod pgrx failed: {proc.stderr.strip()}")
    return True


def kmod_loaded() -> bool:
    return Path("/sys/module", KMOD_NAME).exists()


def load_kmod(release: str) -> bool:
    """insmod pgrx (built if needed); True if this call loaded it."""
    if kmod_loaded():
        return False
    ko = build_kmod(release)
    insmod = shutil.which("insmod") or "/sbin/insmod"
    proc = subprocess.run([insmod, str(ko)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"insmod {ko} failed: {proc.stderr.strip()}")
    return True


def unload_kmod(timeout: float = 10.0) -> None:
    rmmod = shutil.which("rmmod") or "/sbin/rmmod"
    deadline = time.monotonic() + timeout
    while True:
        proc = subprocess.run([rmmod, KMOD_NAME], capture_output=True, text=True)
        if proc.returncode == 0 or not kmod_loaded():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"rmmod {KMOD_NAME} failed: {proc.stderr.strip()}")
        time.sleep(0.1)


class NftCounter(RxCounter):
    """An nftables table of its own at the sink's netdev ingress: counts UDP ``port`` (IPv4 and
    IPv6), optionally drops; deleted on close. Uses the ``nft`` command (Debian: nftables)."""

    backend = "nft"
    counts_skbs = True

    def __init__(self, ifname: str, netns: str | None, port: int = 9, drop: bool = False):
        super().__init__(ifname, netns)
        self.port = _check_port(port)
        if not shutil.which("nft"):
            raise RuntimeError("nft not found: apt-get install nftables")
        self.table = f"pgrx_{ifname}".replace("-", "_")
        verdict = "drop" if drop else "accept"
        self._nft(f"""
            table netdev {self.table} {{
                chain ingress {{
                    type filter hook ingress device "{ifname}" priority -500;
                    udp dport {port} counter name pktgen {verdict}
                }}
                counter pktgen {{ }}
            }}""")
        self.drop = drop
        self._open = True

    def _nft(self, script: str, *args: str) -> str:
        proc = self.host.run(["nft", *args, "-f", "-"] if script else ["nft", *args],
                             input=script or None, text=True, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"nft failed: {proc.stderr.strip()}")
        return proc.stdout

    def reset(self) -> None:
        self._nft("", "reset", "counter", "netdev", self.table, "pktgen")

    def read(self) -> RxCount:
        out = self._nft("", "list", "counter", "netdev", self.table, "pktgen")
        packets, nbytes = (int(n) for n in re.search(r"packets (\d+) bytes (\d+)", out).groups())
        return RxCount(self.backend, packets, nbytes, packets if self.drop else 0,
                       bytes_from="ip")

    def _undo(self) -> None:
        if self._open and self.host.exists:
            self._nft("", "delete", "table", "netdev", self.table)
        self._open = False


def netstat(netns: str | None = None) -> dict[str, int]:
    """/proc/net/netstat of a namespace as {column: value}, all its sections merged."""
    lines = host.on(netns).read_text("/proc/thread-self/net/netstat").splitlines()
    out: dict[str, int] = {}
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        out.update(zip(header.split()[1:], map(int, values.split()[1:]), strict=True))
    return out


PKTGEN_MAGIC = 0xBE9BE955  # the first word of pktgen's header, just after the UDP header


class TcCounter(RxCounter):
    """u32 filters at the sink's ingress qdisc on UDP ``port`` (IPv4 without options, and IPv6),
    or with ``port=None`` on pktgen's magic at the start of the UDP payload (any port), each
    with a gact action whose statistics count: ``drop``, or else classification goes on to the
    next filter (a counter never ends it, so filters of lower priority still see the frame).
    Several counters share one ingress qdisc, each at its own ``prio`` pair (lower runs first);
    each removes its own filters on close, and the qdisc if it made it and nothing is left."""

    backend = "tc"
    counts_skbs = True
    INGRESS = 0xFFFF0000
    ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD

    def __init__(self, ifname: str, netns: str | None, port: int | None = 9, drop: bool = False,
                 prio: int = 1):
        super().__init__(ifname, netns)
        self.port = None if port is None else _check_port(port)
        self.drop = drop
        self._prios = (prio, prio + 1)
        self._made_qdisc = self._open = False
        # u32 keys: value/mask at a byte offset from the network header
        if port is None:
            word = f"0x{PKTGEN_MAGIC:08x}/0xffffffff"
            keys4, keys6 = [f"{word}+28"], [f"{word}+48"]
        else:
            keys4, keys6 = [f"0x{port:08x}/0x0000ffff+20"], [f"0x{port:08x}/0x0000ffff+40"]
        with netdev.route(netns=netns) as ipr:
            self._index = ipr.link_lookup(ifname=ifname)[0]
            if not any(q.get_attr("TCA_KIND") == "ingress"
                       for q in ipr.get_qdiscs(index=self._index)):
                ipr.tc("add", "ingress", self._index, "ffff:")
                self._made_qdisc = True
            self._open = True
            try:
                for each, protocol, keys in (
                    (prio, self.ETH_P_IP, ["0x00110000/0x00ff0000+8", *keys4]),
                    (prio + 1, self.ETH_P_IPV6, ["0x00001100/0x0000ff00+4", *keys6]),
                ):
                    ipr.tc("add-filter", "u32", self._index, parent=self.INGRESS, prio=each,
                           protocol=protocol, keys=keys, target=0x10001,  # classid 1:1, unused
                           action="drop" if drop else "unspec")
            except BaseException:
                self.close()
                raise

    def _filters(self, ipr) -> list:
        return [msg for msg in ipr.get_filters(index=self._index, parent=self.INGRESS)
                if msg["info"] >> 16 in self._prios]

    def _totals(self) -> tuple[int, int]:
        packets = nbytes = 0
        with netdev.route(netns=self.netns) as ipr:
            for msg in self._filters(ipr):
                options = msg.get_attr("TCA_OPTIONS")
                actions = options.get_attr("TCA_U32_ACT") if options else None
                if not actions:
                    continue
                for name, action in actions["attrs"]:
                    stats = action.get_attr("TCA_ACT_STATS") if name.startswith(
                        "TCA_ACT_PRIO") else None
                    basic = stats.get_attr("TCA_STATS_BASIC") if stats else None
                    if basic:
                        packets += basic["packets"]
                        nbytes += basic["bytes"]
        return packets, nbytes

    def reset(self) -> None:
        self._base = self._totals()

    def read(self) -> RxCount:
        packets, nbytes = (a - b for a, b in zip(self._totals(), self._base, strict=True))
        return RxCount(self.backend, packets, nbytes, packets if self.drop else 0,
                       bytes_from="ip")

    def _undo(self) -> None:
        if self._open and self.host.exists:
            with netdev.route(netns=self.netns) as ipr:
                if ipr.link_lookup(ifname=self.ifname):
                    for prio, protocol in zip(self._prios, (self.ETH_P_IP, self.ETH_P_IPV6),
                                              strict=True):
                        # by kind, prio and protocol: without a kind pyroute2 sends neither,
                        # and the kernel then flushes every filter of the qdisc (the u32
                        # plugin wants a target; a whole prio's removal ignores it)
                        with contextlib.suppress(netlink.NetlinkError):  # never added, or gone
                            ipr.tc("del-filter", "u32", self._index, parent=self.INGRESS,
                                   prio=prio, protocol=protocol, target=0x10001)
                    if self._made_qdisc and not ipr.get_filters(index=self._index,
                                                                parent=self.INGRESS):
                        ipr.tc("del", "ingress", self._index, "ffff:")
        self._open = False


class PatchedCounter(RxCounter):
    """The patched kernel's per-namespace counter: switched on (count, or count and drop) for
    the sink's namespace, and back to what it was on close."""

    backend = "patched"
    counts_skbs = True
    SYSCTL = "net/ipv4/pktgen_rcv"

    def __init__(self, ifname: str, netns: str | None, drop: bool = False):
        super().__init__(ifname, netns)
        if "PktgenRcv" not in self._netstat():
            raise RuntimeError("this kernel has no PktgenRcv counter: boot the kernel built "
                               "from patches/ (make patched-kernel; --pktgen-vm-kernel <tree>)")
        self.drop = drop
        self._old = netdev.sysctl(self.SYSCTL, 2 if drop else 1, netns)

    def _netstat(self) -> dict[str, int]:
        return netstat(self.netns)

    def reset(self) -> None:
        self._base = self._netstat()

    def read(self) -> RxCount:
        now = self._netstat()
        return RxCount(self.backend, now["PktgenRcv"] - self._base["PktgenRcv"], None,
                       now["PktgenDrop"] - self._base["PktgenDrop"], bytes_from="")

    def _undo(self) -> None:
        if self._old is not None and self.host.exists:
            netdev.sysctl(self.SYSCTL, self._old, self.netns)
        self._old = None


# A frame on its way up a sink passes the driver's counters (ifstats), tc ingress, nftables'
# netdev ingress, pgrx's (after nftables' chains), ip_rcv (the patched kernel) and PRE_ROUTING
# (pgrx with hook="prerouting"), in that order; one dropped at one of them reaches none after
# it. These count after tc ingress, where a topology's sink discards pktgen's frames (see
# :mod:`pytest_pktgen.lab.topology`).
AFTER_TC_INGRESS = frozenset({"nft", "kmod", "patched"})

BACKENDS = {"ifstats": IfStatsCounter, "tc": TcCounter, "nft": NftCounter,
            "kmod": KmodCounter, "patched": PatchedCounter}
