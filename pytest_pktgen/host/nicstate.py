"""What moving a NIC to another namespace destroys, saved before and put back after.

A link that leaves a namespace is unregistered from it: the kernel flushes its IPv4 and IPv6
addresses, the routes through it in every table (a multipath route goes whole if one of its
nexthops names it), its permanent neighbours, its queueing disciplines with their classes and
filters, and its per-interface sysctls (``net/ipv{4,6}/conf/<nic>``, ``neigh/<nic>``), which
come back with the defaults of the namespace it lands in. Its MAC, MTU, queue length and alias
survive. Coming home, it is again down, with defaults.

:func:`snapshot` saves the lost parts as the kernel's own netlink messages, decoded to plain
data (JSON, so that a later session can restore a NIC left behind by a killed one);
:func:`restore` sends them back (a new ifindex is taken into account), brings the link up as it
was, and compares a new snapshot with the saved one: what differs is an error naming it.
What the kernel makes by itself from the rest (connected and local routes, IPv6 link-local
addresses, the default qdisc) is not saved: it comes back with what it is made from.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import PktgenError
from . import netlink, netns, seam
from .ledger import ledger
from .netns import unique_name

# state the kernel sets on an address by itself, not something a user asked for: secondary,
# optimistic, dadfailed, deprecated, tentative
IFA_F_TRANSIENT = 0x01 | 0x04 | 0x08 | 0x20 | 0x40
IFA_LIFETIME_FOREVER = 0xFFFFFFFF
RTPROT_KERNEL = 2
RTM_F_CLONED = 0x200
NUD_PERMANENT = 0x80
NL_CREATE = 0x1 | 0x4 | 0x400  # NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
NL_EXCL, NL_REPLACE = 0x200, 0x100
RTM_NEWROUTE, RTM_NEWADDR, RTM_NEWNEIGH = 24, 20, 28
RTM_NEWQDISC, RTM_NEWTCLASS, RTM_NEWTFILTER = 36, 40, 44
_TC_SEND = {"qdisc": (RTM_NEWQDISC, NL_CREATE | NL_REPLACE),
            "class": (RTM_NEWTCLASS, NL_CREATE | NL_REPLACE),
            "filter": (RTM_NEWTFILTER, NL_CREATE | NL_EXCL)}
SYSCTL_DIRS = ("net/ipv4/conf", "net/ipv6/conf", "net/ipv4/neigh", "net/ipv6/neigh")
# read-only, or a value the kernel derives (the *_ms twins set the same timer)
SYSCTL_SKIP = {"mc_forwarding", "stable_secret", "base_reachable_time", "retrans_time"}

_FIELDS = {
    "addr": ("family", "prefixlen", "flags", "scope"),
    "route": ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type", "flags"),
    "neigh": ("family", "state", "flags", "ndm_type"),
    "tc": ("family", "handle", "parent", "info"),
}
TC_KEEP = {1: "TCA_KIND", 2: "TCA_OPTIONS", 5: "TCA_RATE", 8: "TCA_STAB", 11: "TCA_CHAIN",
           13: "TCA_INGRESS_BLOCK", 14: "TCA_EGRESS_BLOCK"}
_DROP = {  # what the kernel reports but does not take back (statistics, cache)
    "addr": {"IFA_CACHEINFO"},
    "route": {"RTA_CACHEINFO", "RTA_EXPIRES"},
    "neigh": {"NDA_CACHEINFO", "NDA_PROBES"},
}


@dataclass
class NicState:
    """One NIC's state as :func:`snapshot` found it (plain data: ``as_dict``/``from_dict``)."""

    ifname: str
    index: int
    up: bool
    taken: float  # CLOCK_MONOTONIC, the same in every process of the boot: lifetimes run on
    sysctls: dict[str, str] = field(default_factory=dict)
    addresses: list[dict] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)
    neighbours: list[dict] = field(default_factory=list)
    tc: list[dict] = field(default_factory=list)  # qdiscs, then classes, then filters
    # the bridge, bond, team or VRF it was a port of (by name: the master stays home and a
    # move releases the port from it), and the master's kind
    master: str | None = None
    master_kind: str | None = None

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> NicState:
        return cls(**data)


def _plain(kind: str, msg, index: int) -> dict:
    """A dumped message as plain data, its ifindex written as None (restored as the new one)."""
    fields = {k: msg[k] for k in _FIELDS[kind] if k in msg}
    attrs = [[name, value] for name, value in msg["attrs"] if name not in _DROP[kind]]
    entry = json.loads(json.dumps({"fields": fields, "attrs": attrs}, default=_jsonable))
    return _with_index(entry, index, None)


def _plain_tc(type_: str, msg) -> dict:
    """A tc object with its kind-specific options as the kernel's bytes: pyroute2 decodes
    them, but cannot encode every kind's back (u32 keys), and the kernel takes its own."""
    raw = bytes(msg.data[msg.offset:msg.offset + msg["header"]["length"]])
    attrs, pos = [], 16 + 20  # nlmsghdr, struct tcmsg
    while pos + 4 <= len(raw):
        length, number = struct.unpack_from("=HH", raw, pos)
        if length < 4:
            break
        name = TC_KEEP.get(number & 0x3FFF)
        if name == "TCA_KIND":
            attrs.append([name, raw[pos + 4:pos + length].rstrip(b"\0").decode()])
        elif name:
            attrs.append([name, raw[pos + 4:pos + length].hex()])
        pos += (length + 3) & ~3
    fields = {k: msg[k] for k in _FIELDS["tc"]}
    if type_ != "filter":
        fields["info"] = 0  # a qdisc's is its reference count (its link's queues + 1), not config
    return {"type": type_, "fields": fields, "attrs": attrs}


@functools.cache
def _raw_tcmsg() -> type:
    """tcmsg's header with its attributes as bytes (pyroute2's tcmsg encodes by kind); made
    when first needed, pyroute2 with it."""

    class raw_tcmsg(netlink.nlmsg):
        fields = netlink.tcmsg.fields
        nla_map = tuple((number, name, "asciiz" if name == "TCA_KIND" else "cdata")
                        for number, name in TC_KEEP.items())

    return raw_tcmsg


def _jsonable(value):
    if hasattr(value, "cell"):  # pyroute2's nla_slot: a nested attribute, (name, value)
        return [value.name, value.value]
    if isinstance(value, bytes | bytearray):
        return value.hex()
    raise TypeError(f"cannot save {type(value).__name__} {value!r}")


def _with_index(entry, old, new):
    """``entry`` with every ifindex ``old`` (RTA_OIF, a nexthop's oif) replaced by ``new``."""
    if isinstance(entry, list):
        if len(entry) == 2 and entry[0] in ("RTA_OIF", "RTA_IIF") and entry[1] == old:
            return [entry[0], new]
        return [_with_index(item, old, new) for item in entry]
    if isinstance(entry, dict):
        return {k: (new if k == "oif" and v == old else _with_index(v, old, new))
                for k, v in entry.items()}
    return entry


def _attr(entry: dict, name: str):
    return next((value for key, value in entry["attrs"] if key == name), None)


def snapshot(ifname: str, ipr: netlink.IPRoute | None = None) -> NicState:
    """Everything a namespace move destroys on ``ifname``, here (the NIC's home namespace)."""
    own = ipr is None
    ipr = ipr or netlink.IPRoute()
    try:
        link = ipr.get_links(ifname=ifname)
        if not link:
            raise LookupError(f"no network device {ifname!r}")
        index = link[0]["index"]
        state = NicState(ifname, index, bool(link[0]["flags"] & 1), time.monotonic(),
                         sysctls=_read_sysctls(ifname))
        master = link[0].get_attr("IFLA_MASTER")
        if master:
            (upper,) = ipr.get_links(master)
            info = upper.get_attr("IFLA_LINKINFO")
            state.master = upper.get_attr("IFLA_IFNAME")
            state.master_kind = info.get_attr("IFLA_INFO_KIND") if info else None
        for msg in ipr.get_addr(index=index):
            state.addresses.append(_plain("addr", msg, index))
            cache = msg.get_attr("IFA_CACHEINFO")
            if cache is not None:  # lifetimes left, for the re-add
                state.addresses[-1]["lifetimes"] = [cache["ifa_preferred"], cache["ifa_valid"]]
        for family in (2, 10):
            for msg in ipr.get_routes(family=family):
                if msg["proto"] == RTPROT_KERNEL or msg["flags"] & RTM_F_CLONED:
                    continue  # made from an address or by the kernel; back with it
                hops = msg.get_attr("RTA_MULTIPATH") or []
                if msg.get_attr("RTA_OIF") == index or any(h["oif"] == index for h in hops):
                    state.routes.append(_plain("route", msg, index))
        for msg in ipr.get_neighbours(ifindex=index):
            if msg["state"] & NUD_PERMANENT:
                state.neighbours.append(_plain("neigh", msg, index))
        qdiscs = [q for q in ipr.get_qdiscs(index=index) if q["handle"] != 0]  # 0: a default
        classes = [c for c in ipr.get_classes(index=index) if c["handle"] & 0xFFFF]
        state.tc += [_plain_tc("qdisc", q) for q in qdiscs]
        state.tc += [_plain_tc("class", c) for c in classes]
        for parent in [q["handle"] for q in qdiscs] + [c["handle"] for c in classes]:
            for msg in ipr.get_filters(index=index, parent=parent):
                if msg.get_attr("TCA_KIND") and msg.get_attr("TCA_OPTIONS") is not None:
                    state.tc.append(_plain_tc("filter", msg))
        return state
    finally:
        if own:
            ipr.close()


def _read_sysctls(ifname: str) -> dict[str, str]:
    values = {}
    for top in SYSCTL_DIRS:
        folder = Path("/proc/sys", top, ifname)
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name in SYSCTL_SKIP or not path.stat().st_mode & 0o200:
                continue
            try:
                values[f"{top}/{ifname}/{path.name}"] = path.read_text().strip()
            except OSError:
                continue  # write-only or not readable in this state
    return values


def restore(state: NicState, ipr: netlink.IPRoute | None = None, keep_tc: bool = False
            ) -> list[str]:
    """Put back what ``state`` saved on its NIC, here; return what still differs (empty when
    the NIC is exactly as found). ``keep_tc``: its qdiscs, classes and filters are still
    there (the NIC never moved): not added again."""
    own = ipr is None
    ipr = ipr or netlink.IPRoute()
    try:
        link = ipr.get_links(ifname=state.ifname)
        if not link:
            raise LookupError(f"{state.ifname} is not in this namespace")
        index = link[0]["index"]
        failed = _write_sysctls(state.sysctls)
        for entry in () if keep_tc else state.tc:
            failed += _send(ipr, "tc", entry, *_TC_SEND[entry["type"]], index)
        if state.master and link[0].get_attr("IFLA_MASTER") is None:
            failed += _rejoin(ipr, index, state)
        if state.up and not link[0]["flags"] & 1:
            ipr.link("set", index=index, state="up")
        present = {_address_key(_plain("addr", msg, index))
                   for msg in ipr.get_addr(index=index)}
        elapsed = int(time.monotonic() - state.taken)
        for entry in state.addresses:
            if _address_key(entry) not in present:
                failed += _send(ipr, "addr", _aged(entry, elapsed), RTM_NEWADDR,
                                NL_CREATE | NL_EXCL, index)
        for entry in state.neighbours:
            failed += _send(ipr, "neigh", entry, RTM_NEWNEIGH, NL_CREATE | NL_REPLACE, index)
        for entry in state.routes:
            failed += _send(ipr, "route", entry, RTM_NEWROUTE, NL_CREATE | NL_EXCL, index)
        return failed + differences(state, snapshot(state.ifname, ipr))
    finally:
        if own:
            ipr.close()


def _rejoin(ipr: netlink.IPRoute, index: int, state: NicState) -> list[str]:
    """The NIC a port of its master again (a bond takes a port only while it is down); what
    failed, said."""
    upper = ipr.link_lookup(ifname=state.master)
    if not upper:
        return [f"its {state.master_kind or 'master'} {state.master} is gone: not a port again"]
    try:
        if state.master_kind == "bond":
            ipr.link("set", index=index, state="down")
        ipr.link("set", index=index, master=upper[0])
    except Exception as err:  # noqa: BLE001 - said, as any other part that did not come back
        return [f"not a port of {state.master} again: {err}"]
    return []


def _write_sysctls(values: dict[str, str]) -> list[str]:
    failed = []
    # disable_ipv6 first: it decides whether the link gets IPv6 (addresses, DAD) at all
    for key in sorted(values, key=lambda k: not k.endswith("/disable_ipv6")):
        path = Path("/proc/sys", key)
        try:
            if path.read_text().strip() != values[key]:
                path.write_text(values[key] + "\n")
        except OSError as err:
            failed.append(f"sysctl {key} = {values[key]}: {err.strerror}")
    return failed


def _aged(entry: dict, elapsed: int) -> dict:
    """An address's remaining lifetimes, less the time it spent away."""
    preferred, valid = entry.get("lifetimes", [IFA_LIFETIME_FOREVER] * 2)
    left = [v if v == IFA_LIFETIME_FOREVER else max(1, v - elapsed) for v in (preferred, valid)]
    flags = entry["fields"].get("flags", 0) & ~IFA_F_TRANSIENT
    attrs = [[k, v & ~IFA_F_TRANSIENT if k == "IFA_FLAGS" else v] for k, v in entry["attrs"]]
    attrs.append(["IFA_CACHEINFO", {"ifa_preferred": left[0], "ifa_valid": left[1],
                                    "cstamp": 0, "tstamp": 0}])
    return {**entry, "fields": {**entry["fields"], "flags": flags}, "attrs": attrs}


def _send(ipr: netlink.IPRoute, kind: str, entry: dict, msg_type: int, flags: int,
          index: int) -> list[str]:
    """Send one saved message back to the kernel; what it refused, as a sentence."""
    msg = {"addr": lambda: netlink.ifaddrmsg, "route": lambda: netlink.rtmsg,
           "neigh": lambda: netlink.ndmsg, "tc": _raw_tcmsg}[kind]()()
    entry = _with_index(entry, None, index)
    for key, value in entry["fields"].items():
        msg[key] = value
    if kind != "route":  # a route names its link in RTA_OIF or its nexthops
        msg["ifindex" if kind == "neigh" else "index"] = index
    if kind == "tc":
        msg["attrs"] = [(k, v if k == "TCA_KIND" else bytes.fromhex(v)) for k, v in entry["attrs"]]
    else:
        msg["attrs"] = [tuple(attr) for attr in entry["attrs"]]
    try:
        tuple(ipr._generate_with_cleanup(  # IPRoute.nlm_request of 0.9.7 fails on its status
            ipr.asyncore.nlm_request, msg, msg_type, flags, None, None, None))
    except netlink.NetlinkError as err:
        if err.code == errno.EEXIST or (entry.get("type") == "class"
                                        and err.code == errno.EOPNOTSUPP):
            return []  # there already, or a class its qdisc makes (tbf, prio): compared after
        return [f"{describe(kind, entry)}: {err.args[-1] if err.args else err}"]
    return []


def describe(kind: str, entry: dict) -> str:
    """A saved address, route, neighbour or tc object as ``ip``/``tc`` would name it."""
    if kind == "addr":
        return f"address {_attr(entry, 'IFA_ADDRESS')}/{entry['fields']['prefixlen']}"
    if kind == "route":
        dst = _attr(entry, "RTA_DST") or "default"
        return (f"route {dst}/{entry['fields']['dst_len']} table "
                f"{_attr(entry, 'RTA_TABLE') or entry['fields']['table']}")
    if kind == "neigh":
        return f"neighbour {_attr(entry, 'NDA_DST')}"
    handle = entry["fields"]["handle"]
    return (f"{entry.get('type', 'tc')} {_attr(entry, 'TCA_KIND')} "
            f"{handle >> 16:x}:{handle & 0xFFFF:x}")


def _address_key(entry: dict) -> tuple:
    return (entry["fields"]["family"], _attr(entry, "IFA_ADDRESS"), entry["fields"]["prefixlen"])


def _comparable(kind: str, entry: dict) -> str:
    lifetimes = entry.get("lifetimes") or [IFA_LIFETIME_FOREVER] * 2
    entry = {k: v for k, v in entry.items() if k != "lifetimes"}
    if kind == "addr":
        fields = {**entry["fields"], "flags": entry["fields"]["flags"] & ~IFA_F_TRANSIENT}
        attrs = [[k, v & ~IFA_F_TRANSIENT if k == "IFA_FLAGS" else v] for k, v in entry["attrs"]]
        entry = {"fields": fields, "attrs": attrs,
                 "forever": [v == IFA_LIFETIME_FOREVER for v in lifetimes]}
    return json.dumps(entry, sort_keys=True)


def differences(before: NicState, after: NicState) -> list[str]:
    """What ``after`` lacks or has more than ``before``, as sentences (empty: the same)."""
    out = []
    if before.up != after.up:
        out.append(f"link {'up' if before.up else 'down'} before, "
                   f"{'up' if after.up else 'down'} now")
    if before.master != after.master:
        out.append(f"a port of {before.master or 'no master'} before, of "
                   f"{after.master or 'no master'} now")
    for key in sorted(before.sysctls.keys() | after.sysctls.keys()):
        was, now = before.sysctls.get(key), after.sysctls.get(key)
        if was != now:
            out.append(f"sysctl {key} was {was}, is {now}")
    for kind, name in (("addr", "addresses"), ("route", "routes"), ("neigh", "neighbours"),
                       ("tc", "tc")):
        out += _differ(kind, getattr(before, name), getattr(after, name))
    return [f"{before.ifname}: {line}" for line in out]


def _differ(kind: str, before: list[dict], after: list[dict]) -> list[str]:
    was = {_comparable(kind, e): e for e in before}
    now = {_comparable(kind, e): e for e in after}
    return ([f"{describe(kind, was[k])} is missing" for k in was.keys() - now.keys()]
            + [f"{describe(kind, now[k])} is new" for k in now.keys() - was.keys()])


def unrestorable(state: NicState) -> list[str]:
    """The tc objects of ``state`` that the kernel would not take back as it dumped them, tried
    on a scratch veth in a namespace of its own (qdiscs' dumps are not always their configs:
    htb reports a version its own init refuses). Empty: all of them come back."""
    if not state.tc:
        return []
    scratch = netns.create("pgc")
    try:
        name = unique_name("pgc")
        with seam.on(scratch).netlink() as ipr:
            ipr.link("add", ifname=name, kind="veth", peer={"ifname": name + "p"})
            index = ipr.link_lookup(ifname=name)[0]
            refused = []
            for entry in state.tc:
                refused += _send(ipr, "tc", entry, *_TC_SEND[entry["type"]], index)
            made = snapshot(name, ipr).tc
        return refused or _differ("tc", state.tc, made)
    finally:
        netns.remove(scratch)


class NicNotRestored(PktgenError):
    """A NIC came home, but not as it was found."""


def before_moving(ifname: str) -> NicState:
    """A NIC's state, saved to move it: refused (NicNotRestored) if any of it would not come
    back exactly; call before anything is made for the move."""
    state = snapshot(ifname)
    refused = unrestorable(state)
    if refused:
        raise NicNotRestored(
            f"{ifname} is not moved into a lab namespace: moving a NIC deletes its queueing "
            f"disciplines, and these would not come back as they are: {'; '.join(refused)}. "
            f"Remove them, or use another NIC")
    return state


def move_away(state: NicState, ns: str) -> None:
    """Move a NIC saved by :func:`before_moving` into ``ns``, written in this process's ledger
    first (so that the next session sends it home if this one is killed)."""
    ledger().add("nics", state.ifname, {"netns": ns, "state": state.as_dict()})
    with netlink.IPRoute() as ipr:
        ipr.link("set", index=state.index, net_ns_fd=ns)


def send_home(state: NicState, ns: str, timeout: float = 10.0) -> None:
    """Bring a NIC back from ``ns`` (or, if ``ns`` is gone, wait for the kernel to bring it)
    and restore what :func:`move_away` saved; NicNotRestored names what differs."""
    if (netns.NETNS_DIR / ns).exists():
        with seam.on(ns).netlink() as ipr:
            found = ipr.link_lookup(ifname=state.ifname)
            if found:
                ipr.link("set", index=found[0], state="down")
                ipr.flush_addr(index=found[0])
                home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
                try:
                    ipr.link("set", index=found[0], net_ns_fd=home)
                finally:
                    os.close(home)
    _wait_home(state.ifname, timeout)  # a deleted namespace's NICs come home asynchronously
    try:
        problems = restore(state)
    finally:
        ledger().drop("nics", state.ifname)
    if problems:
        raise NicNotRestored(f"{state.ifname} came home, but not as it was found: "
                             + "; ".join(problems))


def _wait_home(ifname: str, timeout: float) -> None:
    """Wait for a NIC to be here (after its namespace was destroyed, the kernel's cleanup_net
    work moves it, some time later)."""
    deadline = time.monotonic() + timeout
    with netlink.IPRoute() as ipr:
        while not ipr.link_lookup(ifname=ifname):
            if time.monotonic() > deadline:
                raise LookupError(f"{ifname} did not come back from its namespace within "
                                  f"{timeout:.0f}s")
            time.sleep(0.05)
