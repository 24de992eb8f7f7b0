"""Safety: no flooding a management link, one pktgen user per namespace at a time."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
from pyroute2 import IPRoute

from pytest_pktgen import DeviceConfig, PktgenConfigError, PktgenRun
from pytest_pktgen.guard import NamespaceLock

pytestmark = pytest.mark.integration


def test_refuses_the_default_route_link(pktgen, dummy_dev):
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=dummy_dev)[0]
        ipr.addr("add", index=index, address="198.18.5.1", prefixlen=24)
        ipr.route("add", dst="0.0.0.0", dst_len=0, gateway="198.18.5.254", oif=index)
    config = DeviceConfig(dummy_dev, {"count": 100, "dst": "198.18.5.2"})
    with pytest.raises(PktgenConfigError, match="carries the default route"):
        PktgenRun([config], pktgen=pktgen).run()
    assert pktgen.devices() == []
    result = PktgenRun([config], pktgen=pktgen, allow_devices=[dummy_dev]).run()
    assert result.sent == 100


def test_refuses_a_link_with_a_live_tcp_connection(pktgen, veth_dev):
    local, peer = veth_dev
    with IPRoute() as ipr:
        for name, address in ((local, "198.18.6.1"), (peer, "198.18.6.2")):
            ipr.addr("add", index=ipr.link_lookup(ifname=name)[0], address=address, prefixlen=24)
    server = socket.create_server(("198.18.6.2", 2222))
    client = socket.create_connection(("198.18.6.2", 2222), source_address=("198.18.6.1", 0))
    try:
        config = DeviceConfig(local, {"count": 100, "dst": "198.18.6.2"})
        with pytest.raises(PktgenConfigError, match="198.18.6.1, the local address of an "
                                                    "established TCP connection"):
            PktgenRun([config], pktgen=pktgen).run()
    finally:
        client.close()
        server.close()


def test_second_run_in_a_namespace_waits_or_gives_up(veth):
    config = veth.config(count=0, pkt_size=60, ratep=10_000)
    first = PktgenRun([config], pktgen=veth.pktgen, duration=120)  # stopped below
    results = {}
    thread = threading.Thread(target=lambda: results.update(first=first.run()))
    thread.start()
    time.sleep(1.0)
    # the same process's lock is re-entrant, so ask as another process would
    probe = subprocess.run([sys.executable, "-c", f"""
from pytest_pktgen.guard import NamespaceLock, PktgenBusy
try:
    NamespaceLock({veth.generator_ns!r}, timeout=0.5).acquire()
except PktgenBusy as err:
    print(err)
"""], capture_output=True, text=True, timeout=60)
    assert "is in use by process" in probe.stdout, probe.stdout + probe.stderr
    first.stop()  # the paper's Ctrl-C: stop all, results collected as usual
    thread.join(60)
    assert results["first"].sent > 0
    with NamespaceLock(veth.generator_ns, timeout=1):
        pass  # free again


def test_two_sessions_on_one_namespace_both_intact(pytester):
    """Two pytest sessions drive pktgen in the same namespace: one waits for the other."""
    pytester.makepyfile(test_session="""
        from pytest_pktgen import DeviceConfig, PktgenRun
        from pytest_pktgen.links import dummy_link

        def test_run(pktgen):
            with dummy_link() as name:
                config = DeviceConfig(name, {"count": 0, "pkt_size": 60, "ratep": 20000,
                                             "dst": "198.18.0.2"})
                result = PktgenRun([config], pktgen=pktgen, duration=3).run()
                status = result.devices[name]
                assert status.result.sofar > 0 and status.result.errors == 0
                assert result.stopped_by_us
                print("SENT", status.result.sofar)
    """)
    command = [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "test_session.py"]
    children = [subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [child.communicate(timeout=300)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    assert all("SENT" in out for out in outputs)
    assert any("waiting for process" in out for out in outputs)


def test_lock_is_reentrant_within_a_process(veth):
    with NamespaceLock(veth.generator_ns, timeout=1), NamespaceLock(veth.generator_ns, timeout=1):
        pass
    lock = NamespaceLock(veth.generator_ns, timeout=1)
    lock.acquire()
    lock.release()
    assert NamespaceLock._held == {}  # released for real once the outermost holder let go
