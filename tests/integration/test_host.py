"""The Host seam: here and in a network namespace, each call lands where it says (VM lab)."""

from __future__ import annotations

import os

import pytest

from pytest_pktgen import host
from pytest_pktgen.host import netns

pytestmark = pytest.mark.integration


@pytest.fixture
def other():
    """A namespace of its own with a dummy link only it has."""
    name = netns.create("pgnsh")
    try:
        there = host.on(name)
        with there.netlink() as ipr:
            ipr.link("add", ifname="pghostonly", kind="dummy")
        yield there
    finally:
        netns.remove(name)


def links_in(text: str) -> set[str]:
    """Link names in a /proc/net/dev text."""
    return {line.split(":", 1)[0].strip() for line in text.splitlines()[2:]}


def test_each_call_lands_on_its_host(other):
    here = host.on(None)
    assert here is host.LOCAL and isinstance(other, host.Namespace) and other.netns
    # netlink, a file through /proc/thread-self, a callable, a program: the same answer each
    with other.netlink() as ipr:
        assert ipr.link_lookup(ifname="pghostonly")
    with here.netlink() as ipr:
        assert not ipr.link_lookup(ifname="pghostonly")
    assert "pghostonly" in links_in(other.read_text("/proc/thread-self/net/dev"))
    assert "pghostonly" not in links_in(here.read_text("/proc/thread-self/net/dev"))
    assert other.call(lambda: os.stat("/proc/thread-self/ns/net").st_ino) == \
        other.namespace_id() != here.namespace_id()
    shown = other.run(["cat", "/proc/self/net/dev"], capture_output=True, text=True, check=True)
    assert "pghostonly" in links_in(shown.stdout)
    assert "pghostonly" not in links_in(
        here.run(["cat", "/proc/self/net/dev"], capture_output=True, text=True).stdout)


def test_a_write_changes_its_host_only(other):
    key = "/proc/sys/net/ipv4/ip_forward"
    here = host.on(None)
    before = here.read_text(key)
    flipped = "0\n" if other.read_text(key) == "1\n" else "1\n"
    other.write_text(key, flipped)
    assert other.read_text(key) == flipped and here.read_text(key) == before


def test_errors_come_back_and_a_removed_namespace_is_gone(other):
    with pytest.raises(ZeroDivisionError):
        other.call(lambda: 1 / 0)
    assert other.exists and host.on(None).exists
    netns.remove(other.netns)
    assert not other.exists
    with pytest.raises(OSError):
        other.call(lambda: None)  # a namespace that is gone is never made again
