"""Other hosts over SSH, for real: each host a namespace of the guest running its own sshd
(pytest_pktgen.lab.hosts), reached through an OpenSSH client config by its name, the agent
started by python3 there with this package sent over the channel. pktgen is per namespace, so a
run there is another host's pktgen: its threads, its devices, its links."""

from __future__ import annotations

import os
import time

import pytest

from pytest_pktgen.errors import HostError, HostLost
from pytest_pktgen.host import netdev, netlink, netns
from pytest_pktgen.lab.hosts import SshLab
from pytest_pktgen.pktgen.params import DeviceConfig
from pytest_pktgen.pktgen.proc import Pktgen
from pytest_pktgen.run import runner

pytestmark = pytest.mark.integration

LOSS_AFTER_S = 2.0


@pytest.fixture(scope="module")
def ssh_lab(pktgen_module):
    with SshLab(["a", "b", "nopy"], path_env={"nopy": "/nonexistent"}) as lab:
        yield lab


@pytest.fixture
def host_a(ssh_lab):
    machine = ssh_lab.machine("a", loss_after=LOSS_AFTER_S).connect()
    yield machine
    machine.close()


@pytest.fixture
def remote_dummy(ssh_lab, host_a):
    """A dummy link, up, made on host a through its agent's netlink."""
    name = netns.unique_name("pgd")
    with host_a.on().netlink() as ipr:
        ipr.link("add", ifname=name, kind="dummy")
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
    yield name
    with netlink.IPRoute(netns=ssh_lab.hosts["a"].netns, flags=0) as ipr:
        if ipr.link_lookup(ifname=name):
            ipr.link("del", ifname=name)


def _agent_pids(lab: SshLab, name: str) -> list[int]:
    inode = os.stat(netns.NETNS_DIR / lab.hosts[name].netns).st_ino
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino != inode:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"pytest_pktgen" in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def test_a_host_is_its_own_namespace_reached_by_its_config_name(ssh_lab, host_a):
    ns = ssh_lab.hosts["a"].netns
    inode = os.stat(netns.NETNS_DIR / ns).st_ino
    assert host_a.facts["netns_inode"] == inode != os.stat("/proc/self/ns/net").st_ino
    assert host_a.on().namespace_id() == inode
    assert host_a.facts["euid"] == 0 and host_a.facts["pktgen_loaded"]
    assert _agent_pids(ssh_lab, "a") == [host_a.facts["pid"]]
    peer = next(line.split(":")[0].strip() for line in
                host_a.on().read_text("/proc/thread-self/net/dev").splitlines()[2:]
                if line.split(":")[0].strip() != "lo")
    with host_a.on().netlink() as ipr:
        names = {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    assert names == {"lo", peer}
    assert host_a.on().run(["cat", "/proc/sys/kernel/hostname"], capture_output=True,
                           text=True).returncode == 0


def test_pktgen_runs_on_the_remote_host_not_here(ssh_lab, host_a, remote_dummy):
    """The runner, the wire protocol and its checks, there: every frame counted there."""
    config = DeviceConfig(remote_dummy, count=20000, pkt_size=60)
    result = host_a.call(runner.run, [config])
    assert result.sent == 20000 and result.devices[remote_dummy].result.sofar == 20000
    assert result.pps > 0
    stats = netdev.link_stats(remote_dummy, netns=ssh_lab.hosts["a"].netns)
    assert stats.tx_packets == 20000
    assert not Pktgen(netns=ssh_lab.hosts["a"].netns).devices()
    assert not Pktgen().devices()


def _wait_sending(lab: SshLab, dev: str) -> Pktgen:
    pktgen = Pktgen(netns=lab.hosts["a"].netns)
    deadline = time.monotonic() + 30
    while pktgen.device_status(dev).sofar == 0:
        assert time.monotonic() < deadline, "the remote run never sent"
        time.sleep(0.1)
    return pktgen


def _seconds_until_removed(pktgen: Pktgen, dev: str, limit: float) -> float:
    t0 = time.monotonic()
    while dev in pktgen.devices():
        assert time.monotonic() - t0 < limit, f"{dev} still on a pktgen thread after {limit}s"
        time.sleep(0.05)
    return time.monotonic() - t0


def test_a_connection_cut_mid_run_stops_and_removes_the_remote_pktgen(ssh_lab, host_a,
                                                                    remote_dummy):
    """The connection dropped (TCP reset, no goodbye): sshd closes the channel, the agent
    stops its run and removes its devices at once; calls here fail naming the host."""
    run = host_a.new(runner.PktgenRun, [DeviceConfig(remote_dummy, count=0, pkt_size=60,
                                                     ratep=20000)], duration=600)
    run.setup()
    run.start()
    pktgen = _wait_sending(ssh_lab, remote_dummy)
    try:
        host_a.sever()
        took = _seconds_until_removed(pktgen, remote_dummy, 10)
        print(f"connection cut: remote pktgen device removed {took:.2f}s later")
        with pytest.raises(HostLost, match="host a: the connection to ssh://a was lost"):
            run.sample()
        deadline = time.monotonic() + 10
        while _agent_pids(ssh_lab, "a"):
            assert time.monotonic() < deadline, "the agent outlived its connection"
            time.sleep(0.1)
        sofar = netdev.link_stats(remote_dummy, netns=ssh_lab.hosts["a"].netns).tx_packets
        time.sleep(0.5)
        assert netdev.link_stats(remote_dummy, netns=ssh_lab.hosts["a"].netns).tx_packets \
            == sofar, "frames still sent after the agent undid its run"
    finally:
        pktgen.close()


def test_a_silent_network_stops_the_remote_pktgen_within_seconds(ssh_lab, host_a, remote_dummy):
    """No reset, no EOF: the management link goes down. The agent hears no ping for
    loss_after seconds and undoes its run by itself."""
    run = host_a.new(runner.PktgenRun, [DeviceConfig(remote_dummy, count=0, pkt_size=60,
                                                     ratep=20000)], duration=600)
    run.setup()
    run.start()
    pktgen = _wait_sending(ssh_lab, remote_dummy)
    link = ssh_lab.hosts["a"].mgmt_link
    try:
        netdev.set_state(link, "down")
        took = _seconds_until_removed(pktgen, remote_dummy, LOSS_AFTER_S + 8)
        print(f"silent network: remote pktgen device removed {took:.2f}s later "
              f"(loss_after {LOSS_AFTER_S}s)")
        assert took >= LOSS_AFTER_S - 1.0  # its watchdog, not an EOF
    finally:
        netdev.set_state(link, "up")
        pktgen.close()
        host_a.sever()


def test_faults_name_the_host_and_start_nothing(ssh_lab, tmp_path):
    lab = ssh_lab
    with pytest.raises(HostError, match=r"host gone: cannot reach ssh://root@198\.19\.254\.2:2222"):
        lab.machine("gone", url="ssh://root@198.19.254.2:2222", connect_timeout=5).connect()
    with pytest.raises(HostError, match=r"host far: cannot reach ssh://root@198\.18\.250\.1"):
        lab.machine("far", url="ssh://root@198.18.250.1", connect_timeout=5).connect()
    stranger = tmp_path / "stranger"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {stranger}")
    with pytest.raises(HostError, match="host a: ssh://root@198.19.254.2 refused our keys"):
        lab.machine("a", url=lab.url("a"), config=[], client_keys=[str(stranger)]).connect()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostError, match="host b: .*host key is not trusted"):
        lab.machine("b", known_hosts=str(empty)).connect()
    with pytest.raises(HostError, match="host nopy: python3 is missing there"):
        lab.machine("nopy").connect()
    for name in ("a", "b", "nopy"):
        assert not _agent_pids(lab, name), f"an agent runs on {name} after a refused connect"
