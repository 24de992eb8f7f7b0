"""A lab NIC dressed as a lab host's NIC is (addresses, routes, neighbours, sysctls, qdiscs),
and what ``ip``/``tc`` show of it: the tests' own view, independent of the package's."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

TABLES = ("100", "101")
SYSCTLS = {"net/ipv4/conf/{}/rp_filter": "2", "net/ipv6/conf/{}/hop_limit": "33",
           "net/ipv4/neigh/{}/gc_stale_time": "77", "net/ipv6/conf/{}/disable_ipv6": "0"}


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def view(ifname: str) -> dict:
    """Everything a namespace move destroys, as ip and tc print it (lifetimes as finite or
    forever: they count down), once IPv6 duplicate address detection is done."""
    deadline = time.monotonic() + 20
    while sh("ip", "-6", "addr", "show", "dev", ifname, "tentative").strip():
        assert time.monotonic() < deadline, f"{ifname}: IPv6 addresses stay tentative"
        time.sleep(0.1)
    addrs = json.loads(sh("ip", "-j", "addr", "show", "dev", ifname))[0]
    for info in addrs.get("addr_info", []):
        for key in ("valid_life_time", "preferred_life_time"):
            info[key] = "forever" if info.get(key) == 4294967295 else "finite"
        info.pop("tentative", None)
    routes = [json.loads(sh("ip", "-j", family, "route", "show", "table", "all", "dev", ifname))
              for family in ("-4", "-6")]
    multipath = sh("ip", "-j", "route", "show", "table", TABLES[1])  # nexthops name the NIC
    sysctls = {}
    for top in ("net/ipv4/conf", "net/ipv6/conf", "net/ipv4/neigh", "net/ipv6/neigh"):
        for path in sorted(Path("/proc/sys", top, ifname).iterdir()):
            with contextlib.suppress(OSError):
                sysctls[str(path)] = path.read_text()
    return {
        "link": {k: addrs.get(k) for k in ("flags", "mtu", "operstate", "address", "txqlen",
                                           "master")},
        "addresses": addrs.get("addr_info"),
        "routes": routes,
        "multipath": multipath,
        "neighbours": sh("ip", "-j", "neigh", "show", "dev", ifname, "nud", "permanent"),
        "qdiscs": sh("tc", "-j", "qdisc", "show", "dev", ifname),
        "sysctls": sysctls,
    }


def differences(before: dict, after: dict) -> list[str]:
    """What differs between two views, item by item (pytest's diff of them is unreadable)."""
    out = []
    for key in before:
        was, now = before[key], after[key]
        if key == "routes":
            was, now = was[0] + was[1], now[0] + now[1]
        if isinstance(was, list) and isinstance(now, list):
            out += [f"{key} lost {item}" for item in was if item not in now]
            out += [f"{key} gained {item}" for item in now if item not in was]
        elif was != now:
            out.append(f"{key}: {was!r} -> {now!r}")
    return out


@contextlib.contextmanager
def dressed(ifname: str, net: int, ipv6: bool = True):
    """``ifname`` with what a lab host's NIC carries (no default route: the guard would refuse
    it, rightly); undone after. ``net`` keeps two NICs' addresses apart. ``ipv6=False`` for a
    NIC a child session's ``lab_nic_pairs`` will quiet (disable_ipv6 flushes IPv6 addresses:
    the lab's doing, not the move's)."""
    sysctls = {k: v for k, v in SYSCTLS.items() if ipv6 or "ipv6/conf" not in k}
    saved = {key.format(ifname): Path("/proc/sys", key.format(ifname)).read_text()
             for key in sysctls}
    try:
        for key, value in sysctls.items():
            Path("/proc/sys", key.format(ifname)).write_text(value)
        sh("ip", "addr", "add", f"198.18.{net}.1/24", "dev", ifname)
        sh("ip", "addr", "add", f"198.18.{net + 1}.1/24", "dev", ifname, "valid_lft", "3000",
           "preferred_lft", "2000")
        if ipv6:
            sh("ip", "-6", "addr", "add", f"2001:2:0:{net}::1/64", "dev", ifname, "nodad")
        sh("ip", "route", "add", f"198.19.{net}.0/24", "via", f"198.18.{net}.254", "table",
           TABLES[0], "mtu", "1400")
        sh("ip", "route", "add", f"198.19.{net + 1}.0/24", "table", TABLES[1], "nexthop", "via",
           f"198.18.{net}.253", "dev", ifname, "nexthop", "via", f"198.18.{net}.252", "dev", ifname)
        if ipv6:
            sh("ip", "-6", "route", "add", f"2001:2:0:{net + 100}::/64", "via",
               f"2001:2:0:{net}::fe", "dev", ifname)
        sh("ip", "neigh", "add", f"198.18.{net}.254", "lladdr", "02:00:00:00:00:fe", "dev",
           ifname, "nud", "permanent")
        sh("tc", "qdisc", "add", "dev", ifname, "root", "tbf", "rate", "1gbit", "burst", "64kb",
           "latency", "10ms")
        sh("tc", "qdisc", "add", "dev", ifname, "ingress")
        yield ifname
    finally:
        for args in (["tc", "qdisc", "del", "dev", ifname, "root"],
                     ["tc", "qdisc", "del", "dev", ifname, "ingress"],
                     ["ip", "neigh", "flush", "dev", ifname, "nud", "permanent"],
                     ["ip", "route", "flush", "table", TABLES[0]],
                     ["ip", "route", "flush", "table", TABLES[1]],
                     ["ip", "-6", "route", "flush", "dev", ifname],
                     ["ip", "addr", "flush", "dev", ifname]):
            subprocess.run(args, capture_output=True)
        for path, value in saved.items():
            Path("/proc/sys", path).write_text(value)


def killed(code: str, *args: str, said: str) -> tuple[int, list[str]]:
    """A child Python running ``code`` with ``args``, SIGKILLed (no teardown at all) once it
    printed its line starting with ``said`` (what it made); its pid and that line's words."""
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    line = child.stdout.readline()
    assert line.startswith(said), line + child.stdout.read()
    child.kill()
    child.wait(timeout=60)
    return child.pid, line.split()[1:]
