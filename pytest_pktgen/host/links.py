"""Links a test makes for itself (dummy, veth), named uniquely and removed after (pyroute2)."""

from __future__ import annotations

from contextlib import contextmanager

from . import netlink
from .ledger import ledger
from .netdev import quiet, set_state
from .netns import unique_name


@contextmanager
def dummy_link(up: bool = True):
    """A dummy device (the paper's reproducible TX-only sink); deleted on exit."""
    name = unique_name("pgd")
    with netlink.IPRoute() as ipr:
        ledger().add("links", name)
        ipr.link("add", ifname=name, kind="dummy")
        try:
            quiet(name)
            if up:
                set_state(name, "up", ipr)
            yield name
        finally:
            ipr.link("del", ifname=name)
            ledger().drop("links", name)


@contextmanager
def veth_link(up: bool = True):
    """A veth pair in this namespace: (name, peer name); deleting one end deletes both."""
    name, peer = unique_name("pgv"), unique_name("pgp")
    with netlink.IPRoute() as ipr:
        ledger().add("links", name)
        ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer})
        try:
            for ifname in (name, peer):
                quiet(ifname)
                if up:
                    set_state(ifname, "up", ipr)
            yield name, peer
        finally:
            if ipr.get_links(ifname=name):
                ipr.link("del", ifname=name)
            ledger().drop("links", name)
