"""Lab topologies (the paper's Section 6): built in private namespaces, undone on close.

Every topology puts pktgen's transmitting link in a *generator* namespace of its own, so the
namespace the tests run in is never touched, and what it sends cannot arrive locally: it must
cross a veth, a cable or a router to reach the sink. Addresses come from 198.18.0.0/15 and
2001:2::/48; neighbours are static, so no ARP or ND is sent. Each step registers its undo on an
ExitStack right where it is made; :meth:`NetnsTopology.close` runs them in reverse, also after
errors.

The sink discards pktgen's frames by default, counted, at its tc ingress: a u32 filter on
pktgen's magic with a drop action (the paper's count-and-drop, done where the kernel lets us
without a patch). Frames that went up the sink's stack instead (to UDP port 9, which answers
with ICMP) halved what pktgen reached on a veth under TCG: the sink's receive work runs in the
softirq of the sending CPU, so a costly sink measures itself, not the device under test.
``discard=False`` lets them go up as to a receiving host; :attr:`NetnsTopology.sink_mode` says
which, and the reports carry it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import ipaddress
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from .. import host
from ..host import netdev, netlink, netns, nicstate
from ..host.netns import unique_name
from ..pktgen.caps import Caps, link_caps
from ..pktgen.params import DeviceConfig, imix_weights_of
from ..pktgen.proc import Pktgen
from ..run.guard import NamespaceLock, allowed_on, check_not_management
from ..run.remote import new_run
from ..run.runner import PktgenRun
from .rx import CountedResult, RxCounter, TcCounter
from .vm import lab_info

NUD_PERMANENT = 0x80
MLD_SETTLE_S = 0.2  # the last MLD report of a new IPv6 address leaves within a few ms
IFA_F_NODAD = 0x02
DISCARD_PRIO = 0xC000  # the sink's discard runs after any tc counter (prio 1 up)


@dataclass(frozen=True)
class Endpoint:
    """One end of a link: where it is and how pktgen addresses it."""

    ifname: str
    netns: str | None  # None: the namespace the tests run in
    mac: str
    ip4: str
    ip6: str
    prefix4: int = 24
    prefix6: int = 64
    host: str | None = None  # the machine it is on (a --pktgen-host name); None: this one

    def stats(self) -> netdev.LinkStats:
        return host.on(None, self.host).call(netdev.link_stats, self.ifname, None, self.netns)

    def info(self) -> dict:
        return host.on(None, self.host).call(netdev.link_info, self.ifname, None, self.netns)


@runtime_checkable
class Topology(Protocol):
    """What a topology provides to the measurement and the fixtures: ``tx`` links pktgen sends
    on (``next_hops[i]`` is whose MAC the frames on ``tx[i]`` go to), the ``sink`` where they
    must arrive (None: TX only), pktgen of the generator's host, device configs and runs,
    what a link can do, and what its sink does with the frames. :class:`NetnsTopology` builds
    them in this machine's namespaces; a topology on other hosts provides the same."""

    name: str
    generator_ns: str | None
    tx: list[Endpoint]
    sink: Endpoint | None
    next_hops: list[Endpoint]
    nics: dict[str, Nic]

    @property
    def pktgen(self) -> Pktgen: ...

    @property
    def sink_drop(self) -> str | None: ...

    @property
    def sink_mode(self) -> str: ...

    def lift_discard(self) -> None: ...

    def config(self, index: int = 0, *, thread: int = 0, suffix: str = "", ipv6: bool = False,
               flags: Sequence[str] = (), **params) -> DeviceConfig: ...

    def prepare(self, configs: DeviceConfig | Sequence[DeviceConfig], **kwargs) -> PktgenRun: ...

    def run(self, configs: DeviceConfig | Sequence[DeviceConfig], rx: Sequence = (),
            **kwargs) -> CountedResult: ...

    def caps(self, index: int = 0) -> Caps | None: ...

    def close(self) -> None: ...


UDP_SRC = 9  # pktgen's default UDP source port; thread N of a NIC sends from UDP_SRC + N
# On the VM lab's instruction clock (one vCPU) a run's figures are the instructions a packet
# costs, and this process runs on that vCPU too: sampling a run every 0.25 s (reading and
# parsing pktgen's device files in Python) put milliseconds of its own instructions into a
# round, 7 % of a 55 ms one (seen in CI). There a run is sampled once it ends, not meanwhile.
QUIET_SAMPLE_S = 3600.0


@functools.cache
def counting_instructions() -> bool:
    """Whether this process runs in the VM lab on its instruction clock."""
    lab = lab_info()
    return lab is not None and lab.clock == "instructions"


def thread_configs(topology: Topology, index: int, threads: int, count: int,
                   **config) -> list[DeviceConfig]:
    """``count`` packets from tx link ``index``: one device, or ``dev@N`` on pktgen threads
    0..``threads``-1 sharing the count (the first ones one more where it does not divide);
    ``config`` goes to :meth:`Topology.config` (ipv6, flags, pktgen parameters). Each thread
    of a NIC sends from a UDP source port of its own (``UDP_SRC + N``) unless ``config`` sets
    one: every dev@N numbers its packets from 1, and pgrx tells their streams apart by it."""
    config = imix_weights_of(config)
    own_port = threads > 1 and not {"udp_src_min", "udp_src_max"} & config.keys()
    return [topology.config(index, thread=n, suffix=f"@{n}" if threads > 1 else "",
                            **{**config, "count": count // threads + (n < count % threads),
                               **({"udp_src_min": UDP_SRC + n, "udp_src_max": UDP_SRC + n}
                                  if own_port else {})})
            for n in range(threads)]


@dataclass
class NetnsTopology:
    """A built topology: ``tx`` links pktgen sends on, ``sink`` where frames must arrive, and
    ``pktgen`` bound to the generator namespace. ``hops`` are the router's ends, if any."""

    name: str
    generator_ns: str | None
    tx: list[Endpoint]
    sink: Endpoint | None
    next_hops: list[Endpoint]  # per tx link: whose MAC the frames are addressed to
    hops: dict[str, Endpoint] = field(default_factory=dict)
    nics: dict[str, Nic] = field(default_factory=dict)  # crossover: "tx" and "rx", with IRQs
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)
    _pktgen: Pktgen | None = field(default=None, repr=False)
    # the sink's count-and-drop at tc ingress (None: lifted, or never there)
    discard: TcCounter | None = field(default=None, repr=False)
    # a receive counter that drops pktgen's frames later on their way, in the discard's place
    # (:data:`pytest_pktgen.lab.rx.AFTER_TC_INGRESS`)
    dropper: RxCounter | None = field(default=None, repr=False)
    discard_error: str | None = None  # why the sink could not discard, when it could not
    generator_host: str | None = None  # the machine pktgen runs on (None: this one)

    @property
    def sink_drop(self) -> str | None:
        """Who drops pktgen's frames at the sink now: the dropping counter's backend while it
        is open, ``"tc"`` while the discard is there, or None: the sink's stack takes them."""
        if self.dropper is not None and not self.dropper.closed:
            return self.dropper.backend
        return "tc" if self.discard is not None else None

    @property
    def sink_mode(self) -> str:
        """What the sink does with pktgen's frames, for the reports: ``tc-drop`` (counted and
        dropped at tc ingress), ``<backend>-drop`` (at that backend's hook: pgrx's is the sink
        device's netdev ingress, ``kmod-drop-prerouting`` where it had to count at PRE_ROUTING),
        ``stack`` (up the sink's stack, as a receiving host takes them), or ``""``: no sink
        here."""
        if self.sink is None:
            return ""
        if not self.sink_drop:
            return "stack"
        # pgrx drops at the sink's netdev ingress, or (when it could not hook there) later
        late = self.sink_drop == "kmod" and getattr(self.dropper, "hook", "") == "prerouting"
        return f"{self.sink_drop}-drop" + ("-prerouting" if late else "")

    def discard_at_sink(self) -> None:
        """Count and drop pktgen's frames at the sink's tc ingress, until :meth:`lift_discard`
        or close. A kernel without an ingress qdisc, u32 or gact cannot: the frames then go up
        the sink's stack, and :attr:`discard_error` says why."""
        if self.sink is None or self.discard is not None:
            return
        try:
            self.discard = host.new_on(self.sink.host, TcCounter, self.sink.ifname,
                                       self.sink.netns, port=None, drop=True, prio=DISCARD_PRIO)
        except netlink.NetlinkError as err:
            self.discard_error = (f"no tc ingress drop on {self.sink.ifname}: the kernel "
                                  f"answered {os.strerror(err.code)} (ingress qdisc, u32 "
                                  "filter and gact action needed)")
            return
        self.discard_error = None
        self._stack.callback(self.lift_discard)

    def lift_discard(self) -> None:
        """Let pktgen's frames past tc ingress (a backend that counts later must see them)."""
        if self.discard is not None:
            self.discard.close()
            self.discard = None

    @property
    def pktgen(self) -> Pktgen:
        if self._pktgen is None:
            self._pktgen = host.new_on(self.generator_host, Pktgen, netns=self.generator_ns)
            self._stack.callback(self._close_pktgen)
        return self._pktgen

    def _close_pktgen(self):
        if self._pktgen is not None:
            self._pktgen.close()
            self._pktgen = None

    def config(self, index: int = 0, *, thread: int = 0, suffix: str = "", ipv6: bool = False,
               flags: Sequence[str] = (), **params) -> DeviceConfig:
        """A device config for tx link ``index`` with dst/dst_mac (or dst6/src6) filled in."""
        tx, hop = self.tx[index], self.next_hops[index]
        target = self.sink or hop
        base: dict = {"dst_mac": hop.mac}
        if ipv6:
            base.update(src6=tx.ip6)
            if not {"dst6", "dst6_min", "dst6_max"} & params.keys():
                base.update(dst6=target.ip6)
        elif not {"dst", "dst_min", "dst_max"} & params.keys():
            base.update(dst=target.ip4)
        return DeviceConfig(tx.ifname + suffix, {**base, **params}, tuple(flags), thread=thread)

    def prepare(self, configs: DeviceConfig | Sequence[DeviceConfig], **kwargs) -> PktgenRun:
        """A :class:`PktgenRun` in the generator namespace, not yet set up (a config a tx
        link cannot do raises DeviceUnsupported at its setup: the plugin reports an xfail)."""
        if isinstance(configs, DeviceConfig):
            configs = [configs]
        if counting_instructions():
            kwargs.setdefault("sample_interval", QUIET_SAMPLE_S)
        return new_run(self.generator_host, list(configs), pktgen=self.pktgen, **kwargs)

    def run(self, configs: DeviceConfig | Sequence[DeviceConfig], rx: Sequence = (),
            **kwargs) -> CountedResult:
        """Run pktgen in the generator namespace (see :meth:`prepare`). ``rx`` receive counters
        (:mod:`pytest_pktgen.lab.rx`) are reset before and read after: the result's ``received``
        and ``loss()`` then say what arrived."""
        run = self.prepare(configs, **kwargs)
        for counter in rx:
            counter.reset()
        result = run.run()
        return CountedResult.of(result, {counter.backend: counter.settled(result.sent)
                                         for counter in rx})

    def caps(self, index: int = 0) -> Caps:
        """What pktgen can do on tx link ``index`` (:mod:`pytest_pktgen.pktgen.caps`; the
        topology owns the generator namespace, so a scratch device there disturbs nobody)."""
        if self.generator_host is not None:
            return host.on(None, self.generator_host).call(
                locked_caps, self.generator_ns, self.tx[index].ifname)
        with NamespaceLock(self.generator_ns):
            return link_caps(self.pktgen, self.tx[index].ifname)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> NetnsTopology:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def locked_caps(netns: str | None, ifname: str) -> Caps | None:
    """What pktgen can do on ``ifname`` in ``netns``, probed under the namespace's lock (on
    the machine this runs on: a topology's generator on another host calls it there)."""
    with NamespaceLock(netns), Pktgen(netns=netns) as pktgen:
        return link_caps(pktgen, ifname)


# --- building blocks --------------------------------------------------------------------

def _new_ns(stack: contextlib.ExitStack, prefix: str) -> str:
    name = netns.create(prefix)
    stack.callback(netns.remove, name)
    return name


def _configure(ifname: str, ns: str, ip4: str, prefix4: int, ip6: str | None,
               up: bool = True) -> str:
    """Addresses on a link inside ``ns``, IPv6 quiet unless asked for; returns its MAC."""
    if ip6 is None:
        netdev.quiet(ifname, ns)
    else:
        # No link-local address, no DAD, and the MLD reports of joining the solicited-node
        # group sent at once rather than over the next second: once set up, the link is quiet.
        for key, value in (("addr_gen_mode", 1), ("accept_dad", 0),
                           ("mldv1_unsolicited_report_interval", 1),
                           ("mldv2_unsolicited_report_interval", 1)):
            netdev.sysctl(f"net/ipv6/conf/{ifname}/{key}", value, ns)
    with host.on(ns).netlink() as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        ipr.addr("add", index=index, address=ip4, prefixlen=prefix4)
        if ip6 is not None:
            ipr.addr("add", index=index, address=ip6, prefixlen=64, flags=IFA_F_NODAD)
        if up:
            ipr.link("set", index=index, state="up")
        return ipr.get_links(index)[0].get_attr("IFLA_ADDRESS")


def _neighbour(local: Endpoint, remote: Endpoint, ipv6: bool) -> None:
    """A permanent neighbour entry: ``local`` reaches ``remote`` without ARP/ND."""
    with host.on(local.netns).netlink() as ipr:
        index = ipr.link_lookup(ifname=local.ifname)[0]
        ipr.neigh("add", dst=remote.ip4, lladdr=remote.mac, ifindex=index, state=NUD_PERMANENT)
        if ipv6:
            ipr.neigh("add", dst=remote.ip6, lladdr=remote.mac, ifindex=index,
                      state=NUD_PERMANENT, family=10)


def _veth_between(stack, ns_a: str, ns_b: str, addr_a: tuple[str, str],
                  addr_b: tuple[str, str], ipv6: bool, prefix: str) -> tuple[Endpoint, Endpoint]:
    """A veth pair with one end in each namespace (deleting the namespaces deletes it)."""
    name_a, name_b = unique_name(prefix + "a"), unique_name(prefix + "b")
    with host.on(ns_a).netlink() as ipr:
        ipr.link("add", ifname=name_a, kind="veth", peer={"ifname": name_b, "net_ns_fd": ns_b})
    stack.callback(_delete_link, name_a, ns_a)
    mac_a = _configure(name_a, ns_a, addr_a[0], 24, addr_a[1] if ipv6 else None)
    mac_b = _configure(name_b, ns_b, addr_b[0], 24, addr_b[1] if ipv6 else None)
    a = Endpoint(name_a, ns_a, mac_a, addr_a[0], addr_a[1])
    b = Endpoint(name_b, ns_b, mac_b, addr_b[0], addr_b[1])
    _neighbour(a, b, ipv6)
    _neighbour(b, a, ipv6)
    return a, b


def _delete_link(ifname: str, ns: str) -> None:
    if (netns.NETNS_DIR / ns).exists():
        with host.on(ns).netlink() as ipr:
            if ipr.link_lookup(ifname=ifname):
                ipr.link("del", ifname=ifname)


# --- the topologies ---------------------------------------------------------------------

def veth(ipv6: bool = False, discard: bool = True) -> NetnsTopology:
    """Generator end of a veth pair in its own namespace, the sink end in another (which
    counts and drops pktgen's frames at its ingress unless ``discard`` is False)."""
    stack = contextlib.ExitStack()
    with _undo_on_error(stack):
        gen_ns, sink_ns = _new_ns(stack, "pgg"), _new_ns(stack, "pgs")
        gen, sink = _veth_between(stack, gen_ns, sink_ns, ("198.18.0.1", "2001:2::1"),
                                  ("198.18.0.2", "2001:2::2"), ipv6, "pgv")
        return _discarding(NetnsTopology("veth", gen_ns, [gen], sink, [sink], _stack=stack),
                           discard)


def dummy() -> NetnsTopology:
    """The paper's dummy interface as output device: TX only, no receiver, reproducible."""
    stack = contextlib.ExitStack()
    with _undo_on_error(stack):
        gen_ns = _new_ns(stack, "pgg")
        name = unique_name("pgd")
        with host.on(gen_ns).netlink() as ipr:
            ipr.link("add", ifname=name, kind="dummy")
        stack.callback(_delete_link, name, gen_ns)
        mac = _configure(name, gen_ns, "198.18.0.1", 24, None)
        tx = Endpoint(name, gen_ns, mac, "198.18.0.1", "2001:2::1")
        # nothing answers on a dummy: frames go to a made-up receiver
        phantom = Endpoint("-", gen_ns, "02:50:47:ff:ff:ff", "198.18.0.2", "2001:2::2")
        return NetnsTopology("dummy", gen_ns, [tx], None, [phantom], _stack=stack)


@dataclass(frozen=True)
class Nic:
    """A physical (or virtio) NIC of a machine (``host``: a --pktgen-host name; None: this
    one), by name and by sysfs device."""

    ifname: str
    mac: str
    device: Path
    host: str | None = None

    @classmethod
    def named(cls, ifname: str, host_name: str | None = None) -> Nic:
        if host_name is not None:
            found = host.on(None, host_name).call(Nic.named, ifname)
            return dataclasses.replace(found, host=host_name)
        info = netdev.link_info(ifname)
        return cls(ifname, info["mac"], netdev.nic_device(ifname))

    @property
    def irqs(self) -> list[int]:
        return host.on(None, self.host).call(netdev.nic_irqs, None, self.device)

    def __str__(self) -> str:
        return self.ifname if self.host is None else f"{self.host}:{self.ifname}"


class NicHalf:
    """One end of a crossover, made on the machine whose NIC it is (``host.new_on``): the NIC
    moved into a namespace of its own there and addressed; :meth:`close` sends it home as it
    was found. The other end may be on another machine."""

    def __init__(self, state: nicstate.NicState, prefix: str, ip4: str, ip6: str,
                 ipv6: bool = False):
        ifname = state.ifname
        self._stack = contextlib.ExitStack()
        with _undo_on_error(self._stack):
            ns = _new_ns(self._stack, prefix)
            nicstate.move_away(state, ns)
            self._stack.callback(nicstate.send_home, state, ns)
            mac = _configure(ifname, ns, ip4, 24, ip6 if ipv6 else None)
        self.endpoint = Endpoint(ifname, ns, mac, ip4, ip6)

    def ready(self, peer: Endpoint, ipv6: bool = False) -> None:
        """Wait for the carrier, and make ``peer`` (the cable's other end) a neighbour."""
        _wait_carrier(self.endpoint)
        _neighbour(self.endpoint, peer, ipv6)

    def close(self) -> None:
        self._stack.close()


def check_movable(ifname: str, allow_devices: Sequence[str] = (),
                  shown: str | None = None) -> nicstate.NicState:
    """A NIC of this machine that may be moved: not a management link (unless allowed), its
    state saved and able to come back; its saved state. ``shown``: its name in a refusal
    (``host:ifname`` for a NIC of another machine)."""
    check_not_management(shown or ifname, ifname, None, allow_devices)
    return nicstate.before_moving(ifname)


def crossover(tx_nic: Nic, rx_nic: Nic, ipv6: bool = False, pair: int = 0,
              allow_devices: Sequence[str] = (), discard: bool = True) -> NetnsTopology:
    """Two NICs joined by a cable, each moved into a namespace of its own (Figure 4: RX/TX in
    one host; or each on its own machine, ``Nic.host``: pktgen then runs on the tx NIC's,
    the sink counts on the rx NIC's). On close both NICs come back exactly as they were found:
    addresses, routes, neighbours, sysctls and qdiscs (:mod:`pytest_pktgen.host.nicstate`); a NIC
    whose qdiscs would not come back is refused before anything is made.

    Moving a NIC cuts whatever it carries: a NIC that looks like a management link (the
    default route, an SSH session's address; see :func:`~pytest_pktgen.run.guard.management_reason`)
    is refused here, where it is, before anything is made or moved, unless ``allow_devices``
    names it."""
    # both refused or accepted before anything is moved; each moved as found then; an
    # allowance applies on the machine it names (HOST:IFNAME; a bare name: this one)
    states = [host.on(None, nic.host).call(check_movable, nic.ifname,
                                           allowed_on(allow_devices, nic.host), str(nic))
              for nic in (tx_nic, rx_nic)]
    stack = contextlib.ExitStack()
    with _undo_on_error(stack):
        ends = []
        for nic, state, prefix, n in ((tx_nic, states[0], "pgg", 1), (rx_nic, states[1], "pgs", 2)):
            half = host.new_on(nic.host, NicHalf, state, prefix, f"198.18.{10 + pair}.{n}",
                               f"2001:2:0:{10 + pair}::{n}", ipv6)
            stack.callback(half.close)
            ends.append((half, dataclasses.replace(half.endpoint, host=nic.host)))
        if ipv6:
            time.sleep(MLD_SETTLE_S)
        (gen_half, gen), (sink_half, sink) = ends
        gen_half.ready(sink, ipv6)
        sink_half.ready(gen, ipv6)
        return _discarding(NetnsTopology("crossover", gen.netns, [gen], sink, [sink],
                                         nics={"tx": tx_nic, "rx": rx_nic}, _stack=stack,
                                         generator_host=tx_nic.host), discard)


def remote(tx_nic: str, dst_mac: str, dst: str | None = None,
           allow_devices: Sequence[str] = (), tx_host: str | None = None) -> NetnsTopology:
    """A NIC of this host (or of machine ``tx_host``) sending to a receiver elsewhere (another
    host, a router, a tester): ``--pktgen-dev`` with ``--pktgen-dst-mac``. The NIC stays where
    it is, with its addresses; pktgen runs in its namespace, so the safety guard refuses a
    management link, there already and again before every run. Nothing here can count what
    arrives: loss is measured at the receiver, if at all."""
    there = host.on(None, tx_host)
    shown = f"{tx_host}:{tx_nic}" if tx_host else tx_nic
    there.call(check_not_management, shown, tx_nic, None, allowed_on(allow_devices, tx_host))
    info = there.call(netdev.link_info, tx_nic)
    ip6 = "2001:2::2"
    ip4 = "198.18.0.2"
    if dst is not None:
        if ipaddress.ip_address(dst).version == 6:
            ip6 = dst
        else:
            ip4 = dst
    tx = Endpoint(tx_nic, None, info["mac"], "198.18.0.1", "2001:2::1", host=tx_host)
    receiver = Endpoint("-", None, dst_mac, ip4, ip6)
    return NetnsTopology("remote", None, [tx], None, [receiver], generator_host=tx_host)


def _wait_carrier(end: Endpoint, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not end.info()["carrier"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{end.ifname} in {end.netns} has no carrier after {timeout}s")
        time.sleep(0.05)


def forwarding(parallel: bool = False, ipv6: bool = False, discard: bool = True) -> NetnsTopology:
    """Generator -> router (forwarding on) -> sink (Figure 6); ``parallel`` adds a second
    generator link into the router for two devices on two threads (Figure 7)."""
    stack = contextlib.ExitStack()
    with _undo_on_error(stack):
        gen_ns, router_ns, sink_ns = (_new_ns(stack, p) for p in ("pgg", "pgr", "pgs"))
        netdev.sysctl("net/ipv4/ip_forward", 1, router_ns)
        if ipv6:
            netdev.sysctl("net/ipv6/conf/all/forwarding", 1, router_ns)
        tx, hops_in = [], []
        for n in range(2 if parallel else 1):
            net = 20 + 2 * n
            gen, hop = _veth_between(stack, gen_ns, router_ns,
                                     (f"198.18.{net}.1", f"2001:2:0:{net}::1"),
                                     (f"198.18.{net}.254", f"2001:2:0:{net}::254"), ipv6, "pgf")
            tx.append(gen)
            hops_in.append(hop)
        out, sink = _veth_between(stack, router_ns, sink_ns, ("198.18.21.254", "2001:2:0:21::254"),
                                  ("198.18.21.2", "2001:2:0:21::2"), ipv6, "pgk")
        # pktgen builds its frames itself; routes only carry the sink's replies (ICMP) back
        _route(tx[0], "198.18.21.0", hops_in[0].ip4)
        if ipv6:
            _route(tx[0], "2001:2:0:21::", hops_in[0].ip6, family=10)
        for gen in tx:
            _route(sink, gen.ip4.rsplit(".", 1)[0] + ".0", out.ip4)
            if ipv6:
                _route(sink, gen.ip6.rsplit(":", 2)[0] + "::", out.ip6, family=10)
        hops = {f"in{n}": hop for n, hop in enumerate(hops_in)}
        hops["out"] = out
        name = "forwarding-parallel" if parallel else "forwarding"
        return _discarding(NetnsTopology(name, gen_ns, tx, sink, hops_in, hops=hops,
                                         _stack=stack), discard)


@dataclass(frozen=True)
class LabTopology:
    """A topology the lab builds in namespaces of its own, offered as a fixture of its name:
    ``build(**kwargs, **the test's indirect parameters)``; with a ``sink``, the sink discards
    pktgen's frames by ``--pktgen-sink``."""

    build: Callable[..., NetnsTopology]
    doc: str
    sink: bool = True
    kwargs: dict = field(default_factory=dict)


# fixture name -> how to build it; the fixtures are made from this table
IN_NAMESPACES = {
    "veth": LabTopology(veth, """A veth pair: the generator end in a namespace of its own, the
    sink end in another.

    A :class:`~pytest_pktgen.lab.topology.NetnsTopology`: ``.tx[0]``/``.sink`` carry ifname,
    MAC and addresses (198.18.0.1/.2, 2001:2::1/::2), ``.config(count=...)`` fills dst and
    dst_mac, ``.run(...)`` runs pktgen in the generator namespace. Both namespaces are removed
    after. Indirect parameters: ``{"ipv6": True}`` configures the IPv6 addresses too;
    ``{"discard": False}`` lets pktgen's frames go up the sink's stack (default:
    ``--pktgen-sink``, which counts and drops them at its tc ingress: ``.sink_mode``,
    ``.discard.read()``)."""),
    "dummy": LabTopology(dummy, "A dummy device in a namespace of its own: the paper's "
                         "reproducible TX-only output.", sink=False),
    "forwarding": LabTopology(forwarding, """Generator -> router namespace (forwarding on) ->
    sink namespace (Figure 6). The frames are addressed to the router (``.next_hops``);
    ``.hops`` are its in/out ends."""),
    "forwarding_parallel": LabTopology(forwarding, "Forwarding with two generator links into "
                                       "the router, for two threads (Figure 7).",
                                       kwargs={"parallel": True}),
}


def _route(end: Endpoint, dst: str, gateway: str, family: int = 2) -> None:
    with host.on(end.netns).netlink() as ipr:
        ipr.route("add", dst=dst, dst_len=24 if family == 2 else 64, gateway=gateway,
                  family=family)


def _discarding(topology: NetnsTopology, discard: bool) -> NetnsTopology:
    if discard:
        topology.discard_at_sink()
    return topology


@contextlib.contextmanager
def _undo_on_error(stack: contextlib.ExitStack):
    """While building: any error undoes what was made so far, then propagates."""
    try:
        yield
    except BaseException:
        stack.close()
        raise
