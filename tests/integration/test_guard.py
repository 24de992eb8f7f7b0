"""Safety: no flooding a management link, one pktgen user per namespace at a time."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from accounting import wait_until

from pytest_pktgen import DeviceConfig, PktgenConfigError, PktgenRun
from pytest_pktgen.host.netlink import IPRoute
from pytest_pktgen.host.netlink import netns as pr_netns
from pytest_pktgen.run.guard import NamespaceLock

pytestmark = pytest.mark.integration


def test_refuses_the_default_route_link(pktgen, dummy_dev):
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=dummy_dev)[0]
        ipr.addr("add", index=index, address="198.18.5.1", prefixlen=24)
        ipr.route("add", dst="0.0.0.0", dst_len=0, gateway="198.18.5.254", oif=index)
    config = DeviceConfig(dummy_dev, {"count": 100, "dst": "198.18.5.2"})
    with pytest.raises(PktgenConfigError, match=rf"{dummy_dev} carries the IPv4 default route "
                                                r"\(table main\), a management link perhaps "
                                                rf"\(.*--pktgen-allow-dev {dummy_dev}"):
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
    first = PktgenRun([config], pktgen=veth.pktgen, duration=600)  # stopped below
    results = {}
    thread = threading.Thread(target=lambda: results.update(first=first.run()))
    thread.start()
    wait_until(lambda: first.samples and first.samples[-1].sofar[config.device] > 0,
               "the first run sending")  # it holds the lock from its setup on
    # the same process's lock is re-entrant, so ask as another process would
    probe = subprocess.run([sys.executable, "-c", f"""
from pytest_pktgen.run.guard import NamespaceLock, PktgenBusy
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
        import os
        import time
        from pathlib import Path

        import pytest

        from pytest_pktgen import DeviceConfig, PktgenRun
        from pytest_pktgen.host.links import dummy_link

        @pytest.fixture
        def together():
            # both sessions ask for the namespace (the pktgen fixture) at the same moment,
            # however long each took to start: one of them must wait
            Path(f"ready-{os.getpid()}").touch()
            deadline = time.monotonic() + 300
            while len(list(Path().glob("ready-*"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)

        def test_run(together, pktgen):
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
    print(*outputs, sep="\n")
    assert [child.returncode for child in children] == [0, 0]
    assert all("SENT" in out for out in outputs)
    assert any("waiting for process" in out for out in outputs)


def test_lock_is_reentrant_within_a_process(veth):
    with NamespaceLock(veth.generator_ns, timeout=1), NamespaceLock(veth.generator_ns, timeout=1):
        pass
    lock = NamespaceLock(veth.generator_ns, timeout=1)
    lock.acquire()
    lock.release()
    assert NamespaceLock._held == {}  # released for real once the outermost holder let go


RUNNER = """
import time
from pathlib import Path

from pytest_pktgen import DeviceConfig, PktgenRun
from pytest_pktgen.host.links import dummy_link


def test_long_run(pktgen_module):
    with dummy_link() as name:
        config = DeviceConfig(name, {"count": 0, "pkt_size": 60, "ratep": 20000,
                                     "dst": "198.18.0.2"})
        run = PktgenRun([config], duration=600)
        run.setup()  # holds this namespace's lock until cleanup
        try:
            run.start()
            while run.sample().sofar[name] <= 0:
                time.sleep(0.05)
            Path("running").touch()
            deadline = time.monotonic() + 300
            while not Path("ended").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(3)  # the other session's teardown comes now, unless it waits for us
            assert run.running, "the other session's teardown stopped this run"
            result = run.finish(False)
        finally:
            run.cleanup()
        print("SENT", result.devices[name].result.sofar)
"""

ENDER = """
import time
from pathlib import Path


def test_ends_while_the_other_runs(pktgen_module):
    deadline = time.monotonic() + 300
    while not Path("running").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Path("running").exists()
    Path("ended").touch()  # then pktgen_module's teardown resets pktgen in this namespace
"""


def test_a_session_ending_leaves_another_sessions_run_alone(pytester):
    """pktgen_module's teardown resets pktgen (and unloads it, if it loaded it) only under the
    namespace lock: a session that ends while another one's run goes on waits for that run."""
    pytester.makepyfile(test_runner=RUNNER, test_ender=ENDER)
    children = [subprocess.Popen([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider",
                                  name], cwd=pytester.path, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
                for name in ("test_runner.py", "test_ender.py")]
    outputs = [child.communicate(timeout=600)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    assert "SENT" in outputs[0]
    assert "waiting for process" in outputs[1]  # the ender's teardown waited for the run


# --- what the guard sees: each scenario stacks something on a dummy "NIC" ---------------------

def _link(stack, ipr, **kwargs) -> int:
    ipr.link("add", **kwargs)
    index = ipr.link_lookup(ifname=kwargs["ifname"])[0]
    stack.callback(ipr.link, "del", index=index)
    ipr.link("set", index=index, state="up")
    return index


def _tcp(stack, family, address: str, port: int) -> None:
    """An established TCP connection from ``address`` to itself (both sockets of ``family``)."""
    server = socket.socket(family)
    stack.callback(server.close)
    if family == socket.AF_INET6:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual-stack
    server.bind(("::" if family == socket.AF_INET6 else address, port))
    server.listen()
    client = socket.socket(family)
    stack.callback(client.close)
    client.bind((address, 0))
    client.connect((address, port))


def _default_in_table_100(stack, ipr, nic, name):
    ipr.addr("add", index=nic, address="198.18.5.1", prefixlen=24)
    ipr.route("add", dst="0.0.0.0/0", gateway="198.18.5.254", oif=nic, table=100)
    stack.callback(ipr.route, "del", dst="0.0.0.0/0", table=100)
    return rf"{name} carries the IPv4 default route \(table 100\)"


def _ipv6_default(stack, ipr, nic, name):
    Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("0\n")  # quiet lab links
    ipr.addr("add", index=nic, address="2001:2:5::1", prefixlen=64, flags=0x02)  # no DAD
    ipr.route("add", dst="::/0", gateway="2001:2:5::fe", oif=nic, table=101)
    stack.callback(ipr.route, "del", dst="::/0", family=socket.AF_INET6, table=101)
    return rf"{name} carries the IPv6 default route \(table 101\)"


def _two_hops(stack, ipr, nic, name, dst: str, table: int) -> None:
    """A multipath route to ``dst``: a hop on a dummy beside the NIC, and one on the NIC."""
    other = _link(stack, ipr, ifname=f"{name}o", kind="dummy")
    ipr.addr("add", index=nic, address="198.18.5.1", prefixlen=24)
    ipr.addr("add", index=other, address="198.18.8.1", prefixlen=24)
    ipr.route("add", dst=dst, table=table,
              multipath=[{"gateway": "198.18.8.254", "oif": other},
                         {"gateway": "198.18.5.254", "oif": nic}])
    stack.callback(ipr.route, "del", dst=dst, table=table)


def _ecmp_default(stack, ipr, nic, name):
    _two_hops(stack, ipr, nic, name, "0.0.0.0/0", 102)
    return rf"{name} carries the IPv4 default route \(table 102\)"


def _multipath_beside_another(stack, ipr, nic, name):
    """Not a default route: a move of the NIC deletes the whole route, the other hop too."""
    _two_hops(stack, ipr, nic, name, "172.16.0.0/12", 105)
    return (rf"{name} carries a next hop of the IPv4 route 172.16.0.0/12 \(table 105\) beside "
            rf"{name}o: moving it takes the whole route away, their hops too")


def _vlan_with_default(stack, ipr, nic, name):
    vlan = _link(stack, ipr, ifname=f"{name}v", kind="vlan", link=nic, vlan_id=100)
    ipr.addr("add", index=vlan, address="198.18.5.1", prefixlen=24)
    ipr.route("add", dst="0.0.0.0/0", gateway="198.18.5.254", oif=vlan, table=103)
    stack.callback(ipr.route, "del", dst="0.0.0.0/0", table=103)
    return rf"{name} is stacked with {name}v, which carries the IPv4 default route \(table 103\)"


def _macvlan_with_ssh(stack, ipr, nic, name):
    macvlan = _link(stack, ipr, ifname=f"{name}m", kind="macvlan", link=nic, macvlan_mode="bridge")
    ipr.addr("add", index=macvlan, address="198.18.9.1", prefixlen=24)
    _tcp(stack, socket.AF_INET, "198.18.9.1", 2223)
    return (rf"{name} is stacked with {name}m, which has 198.18.9.1, the local address of an "
            "established TCP connection")


def _bridge_with_default(stack, ipr, nic, name):
    bridge = _link(stack, ipr, ifname=f"{name}b", kind="bridge")
    ipr.link("set", index=nic, master=bridge)
    ipr.addr("add", index=bridge, address="198.18.5.1", prefixlen=24)
    ipr.route("add", dst="0.0.0.0/0", gateway="198.18.5.254", oif=bridge, table=104)
    stack.callback(ipr.route, "del", dst="0.0.0.0/0", table=104)
    return rf"{name} is stacked with {name}b, which carries the IPv4 default route \(table 104\)"


def _dual_stack_ssh(stack, ipr, nic, name):
    ipr.addr("add", index=nic, address="198.18.10.1", prefixlen=24)
    _tcp(stack, socket.AF_INET6, "::ffff:198.18.10.1", 2224)
    return rf"{name} has 198.18.10.1, the local address of an established TCP connection"


@pytest.mark.parametrize("scenario", [
    _default_in_table_100, _ipv6_default, _ecmp_default, _multipath_beside_another,
    _vlan_with_default, _macvlan_with_ssh, _bridge_with_default, _dual_stack_ssh],
    ids=lambda f: f.__name__.strip("_"))
def test_the_guard_sees_management_links_in_every_shape(pktgen, dummy_dev, scenario):
    """Policy-routing tables, IPv6, multipath next hops, devices stacked on the NIC or above it,
    and IPv4 connections on dual-stack sockets: each refused, naming the link, the reason and
    the way to allow it; allowed explicitly, it runs."""
    config = DeviceConfig(dummy_dev, {"count": 100, "dst": "198.18.5.2"})
    with IPRoute() as ipr, contextlib.ExitStack() as stack:
        nic = ipr.link_lookup(ifname=dummy_dev)[0]
        expected = scenario(stack, ipr, nic, dummy_dev)
        with pytest.raises(PktgenConfigError, match=expected + r", a management link perhaps "
                           rf"\(allow it explicitly to flood it anyway: --pktgen-allow-dev "
                           rf"{dummy_dev}, or allow_devices=\['{dummy_dev}'\]\)"):
            PktgenRun([config], pktgen=pktgen).run()
        assert pktgen.devices() == []
        assert PktgenRun([config], pktgen=pktgen, allow_devices=[dummy_dev]).run().sent == 100


@pytest.mark.parametrize("where", ["tx", "tx-vlan", "rx"])
def test_a_crossover_refuses_a_management_nic_before_moving_it(lab_nic_pairs, pktgen_module,
                                                             where):
    """A crossover moves its NICs away (which cuts what they carry): a NIC with the default
    route, or a VLAN on it with the route, is refused where it is, before anything is made."""
    from pytest_pktgen.lab import topology

    pair = lab_nic_pairs[0]
    name = pair.rx if where == "rx" else pair.tx
    namespaces = set(pr_netns.listnetns())
    with IPRoute() as ipr, contextlib.ExitStack() as stack:
        index = ipr.link_lookup(ifname=name)[0]
        if where == "tx-vlan":
            index = _link(stack, ipr, ifname=f"{name}.7", kind="vlan", link=index, vlan_id=7)
        ipr.addr("add", index=index, address="198.18.20.1", prefixlen=24)
        stack.callback(ipr.addr, "del", index=index, address="198.18.20.1", prefixlen=24)
        ipr.route("add", dst="0.0.0.0/0", gateway="198.18.20.254", oif=index)
        stack.callback(ipr.route, "del", dst="0.0.0.0/0", oif=index)
        with pytest.raises(PktgenConfigError, match=rf"{name} (carries|is stacked with "
                                                    rf"{name}.7, which carries) the IPv4 default"):
            topology.crossover(topology.Nic.named(pair.tx), topology.Nic.named(pair.rx))
        assert ipr.link_lookup(ifname=pair.tx) and ipr.link_lookup(ifname=pair.rx)  # not moved
        assert set(pr_netns.listnetns()) == namespaces  # nothing made
