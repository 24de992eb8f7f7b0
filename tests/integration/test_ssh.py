"""Other hosts over SSH, for real: each host a namespace of the guest running its own sshd
(pytest_pktgen.lab.hosts), reached through an OpenSSH client config by its name, the agent
started by python3 there with this package sent over the channel. pktgen is per namespace, so a
run there is another host's pktgen: its threads, its devices, its links."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from accounting import stamps_us, stopped_by_the_stop

from pytest_pktgen import host
from pytest_pktgen.errors import HostError, HostLost, PktgenConfigError, PktgenRunError
from pytest_pktgen.host import netdev, netlink, netns, nicstate
from pytest_pktgen.host.irq import IrqPinning, read_mask
from pytest_pktgen.host.ledger import RUN_DIR
from pytest_pktgen.lab import topology
from pytest_pktgen.lab.hosts import SshLab
from pytest_pktgen.lab.rx import AFTER_TC_INGRESS
from pytest_pktgen.pktgen.params import DeviceConfig
from pytest_pktgen.pktgen.proc import Pktgen
from pytest_pktgen.run import runner
from pytest_pktgen.run.guard import PktgenBusy
from pytest_pktgen.run.multi import MultiResult, run_together
from pytest_pktgen.run.remote import RemoteRun

pytestmark = pytest.mark.integration

LOSS_AFTER_S = 2.0
ENDLESS = {"count": 0, "pkt_size": 60, "ratep": 20000}


@pytest.fixture(scope="module")
def ssh_lab(pktgen_module):
    with SshLab(["a", "b", "c", "nopy"], path_env={"nopy": "/nonexistent"}) as lab:
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
        host_a.call(netdev.quiet, name)  # no IPv6: nothing but pktgen's frames leave it
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
                if b"pytest_pktgen.host import agent" in f.read():
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
    config = DeviceConfig(remote_dummy, {"count": 20000, "pkt_size": 60})
    result = host_a.call(runner.run, [config])
    assert result.sent == 20000 and result.devices[remote_dummy].result.sofar == 20000
    assert result.pps > 0
    stats = netdev.link_stats(remote_dummy, netns=ssh_lab.hosts["a"].netns)
    assert stats.tx_packets == 20000
    with Pktgen(netns=ssh_lab.hosts["a"].netns) as there:  # its resident thread leaves after
        assert not there.devices()
    assert not Pktgen().devices()


def _wait_sending(lab: SshLab, dev: str) -> Pktgen:
    pktgen = Pktgen(netns=lab.hosts["a"].netns)
    deadline = time.monotonic() + 30
    while pktgen.device_status(dev).sofar == 0:
        assert time.monotonic() < deadline, "the remote run never sent"
        time.sleep(0.1)
    return pktgen


def _raised(call) -> BaseException | None:
    try:
        call()
    except BaseException as err:  # noqa: BLE001 - the test looks at it
        return err
    return None


def _seconds_until_removed(pktgen: Pktgen, dev: str, limit: float) -> float:
    t0 = time.monotonic()
    while dev in pktgen.devices():
        assert time.monotonic() - t0 < limit, f"{dev} still on a pktgen thread after {limit}s"
        time.sleep(0.05)
    return time.monotonic() - t0


def test_a_connection_cut_mid_run_stops_and_removes_the_remote_pktgen(ssh_lab, host_a,
                                                                    remote_dummy):
    """The connection dropped (TCP reset, no goodbye): sshd closes the channel, the agent
    stops its run and removes its devices at once; calls here fail naming the host, and the
    run waited for here ends as a failure with the samples that had come (live, as it went)."""
    seen: list = []
    run = RemoteRun("a", host_a.new(runner.PktgenRun, [DeviceConfig(remote_dummy, ENDLESS)],
                                    duration=600), on_sample=seen.append)
    run.setup()
    run.start()
    ended: list = []
    waiter = threading.Thread(target=lambda: ended.append(_raised(run.wait)), daemon=True)
    waiter.start()
    pktgen = _wait_sending(ssh_lab, remote_dummy)
    try:
        deadline = time.monotonic() + 30
        while sum(s.sofar[remote_dummy] > 0 for s in seen) < 2:  # samples here as it runs
            assert time.monotonic() < deadline and waiter.is_alive(), "no live samples came"
            time.sleep(0.1)
        host_a.sever()
        took = _seconds_until_removed(pktgen, remote_dummy, 10)
        print(f"connection cut: remote pktgen device removed {took:.2f}s later")
        waiter.join(10)
        err = ended[0]
        print(f"the run here: {err}")
        assert isinstance(err, PktgenRunError), err
        assert str(err).startswith("pktgen's run on host a was cut off: the connection to "
                                   "ssh://a was lost")
        counts = [s.sofar[remote_dummy] for s in err.samples]
        assert err.samples == seen and counts == sorted(counts) and counts[-1] > 0
        assert f"had sent {counts[-1]:,} frames ({remote_dummy} {counts[-1]:,})" in str(err)
        assert counts[-1] <= netdev.link_stats(remote_dummy,
                                               netns=ssh_lab.hosts["a"].netns).tx_packets
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
    """No reset, no EOF: the management link goes down. The agent hears nothing for
    loss_after seconds and undoes its run by itself; the controller hears nothing either, and
    the run waited for here ends within loss_after and a few seconds (not when TCP gives up,
    ~15 minutes), cut off by a silent network; closing does not hang."""
    run = RemoteRun("a", host_a.new(runner.PktgenRun, [DeviceConfig(remote_dummy, ENDLESS)],
                                    duration=600))
    run.setup()
    run.start()
    ended: list = []
    waiter = threading.Thread(target=lambda: ended.append(_raised(run.wait)), daemon=True)
    waiter.start()
    pktgen = _wait_sending(ssh_lab, remote_dummy)
    link = ssh_lab.hosts["a"].mgmt_link
    try:
        netdev.set_state(link, "down")
        started = time.monotonic()
        took = _seconds_until_removed(pktgen, remote_dummy, LOSS_AFTER_S + 8)
        print(f"silent network: remote pktgen device removed {took:.2f}s later "
              f"(loss_after {LOSS_AFTER_S}s)")
        assert took >= LOSS_AFTER_S - 1.0  # its watchdog, not an EOF
        waiter.join(LOSS_AFTER_S + 5 - (time.monotonic() - started))
        waited = time.monotonic() - started
        print(f"silent network: the wait here ended {waited:.2f}s later")
        assert ended, f"the run's wait here still blocks {waited:.0f}s after the link went"
        assert isinstance(ended[0], PktgenRunError), ended[0]
        assert f"for {LOSS_AFTER_S:g}s: the network is silent" in str(ended[0])
        assert isinstance(ended[0].__cause__, HostLost)
        closing = time.monotonic()
        host_a.close()
        assert time.monotonic() - closing < 5
    finally:
        netdev.set_state(link, "up")
        pktgen.close()
        host_a.sever()


def test_a_large_frame_on_a_slow_link_is_not_silence(ssh_lab):
    """A call carrying 1.5 MB over a management link of 4 Mbit/s: about 3 s on the wire,
    longer than loss_after (2 s). The agent hears the frame's bytes as they come, not only
    once it is whole, and keeps its channel; the call returns (the pgrx image to a far lab
    host)."""
    m = ssh_lab.machine("a", loss_after=LOSS_AFTER_S).connect()
    link = ssh_lab.hosts["a"].mgmt_link
    tbf = ["qdisc", "replace", "dev", link, "root", "tbf", "rate", "4mbit", "burst", "16kb",
           "latency", "5s"]
    done = subprocess.run(["tc", *tbf], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    try:
        blob = os.urandom(1_500_000)  # nothing to compress away
        started = time.monotonic()
        assert m.call(len, blob) == len(blob)
        took = time.monotonic() - started
        print(f"1.5 MB over 4 Mbit/s: {took:.1f}s (loss_after {LOSS_AFTER_S}s)")
        assert took > LOSS_AFTER_S  # longer than silence may last: heard by its bytes
        assert m.call(os.getpid) == m.facts["pid"]
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", link, "root"], capture_output=True)
        m.close()


def test_one_run_at_a_time_in_a_hosts_namespace_across_sessions(ssh_lab, host_a, remote_dummy):
    """Two sessions' agents on host a: pktgen's start and stop act on every device of a's
    namespace, so the second run there waits for the first's lock, and gives up naming who
    holds it; free again once the first is cleaned up."""
    other = ssh_lab.machine("a").connect()
    try:
        first = host_a.new(runner.PktgenRun, [DeviceConfig(remote_dummy, ENDLESS)], duration=60)
        first.setup()
        second = other.new(runner.PktgenRun, [DeviceConfig(remote_dummy, {
            "count": 1000, "pkt_size": 60})], lock_timeout=1)
        with pytest.raises(PktgenBusy, match=rf"in use by process {host_a.facts['pid']} .*gave "
                                             r"up after 1s"):
            second.setup()
        first.cleanup()
        assert other.call(runner.run, [DeviceConfig(remote_dummy, {
            "count": 1000, "pkt_size": 60})]).sent == 1000
    finally:
        other.close()


def test_a_host_behind_another_is_reached_by_proxyjump(ssh_lab, tmp_path):
    """The OpenSSH config's ProxyJump: host c is reached through host a, over a cable only
    they share (this namespace has no route to it), and the agent runs on c."""
    ssh_lab.cable("a", "c", ("198.19.253.1", "198.19.253.2"))
    known = tmp_path / "known_hosts"
    key = ssh_lab.known_hosts.read_text().splitlines()[0].split()[1:]
    known.write_text(ssh_lab.known_hosts.read_text() + f"198.19.253.2 {' '.join(key)}\n")
    config = tmp_path / "ssh_config"
    config.write_text(ssh_lab.config.read_text() + (
        f"Host c-behind-a\n    HostName 198.19.253.2\n    User root\n"
        f"    IdentityFile {ssh_lab.client_key}\n    UserKnownHostsFile {known}\n"
        "    ProxyJump a\n"))
    with pytest.raises(HostError, match="host direct: cannot reach"):  # not from here
        ssh_lab.machine("direct", url="ssh://root@198.19.253.2", connect_timeout=5).connect()
    behind = ssh_lab.machine("c", url="ssh://c-behind-a", config=[str(config)],
                             known_hosts=str(known)).connect()
    try:
        assert behind.facts["netns_inode"] == os.stat(
            netns.NETNS_DIR / ssh_lab.hosts["c"].netns).st_ino
    finally:
        behind.close()


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
    for name in ("a", "b", "c", "nopy"):
        assert not _agent_pids(lab, name), f"an agent runs on {name} after a refused connect"


# --- NICs of other hosts: the same fixtures and measurements ----------------------------------

@pytest.fixture(scope="module")
def hosts_with_nics(ssh_lab, lab_nic_pairs):
    """The lab's first cable with one end on host a, the other on host b (moved into their
    namespaces as a lab would have them), and both hosts connected and known by name."""
    pair = lab_nic_pairs[0]
    moved = []
    machines = []
    try:
        for ifname, name in ((pair.tx, "a"), (pair.rx, "b")):
            state = nicstate.before_moving(ifname)
            nicstate.move_away(state, ssh_lab.hosts[name].netns)
            moved.append((state, ssh_lab.hosts[name].netns))
        for name in ("a", "b"):
            machine = ssh_lab.machine(name).connect()
            machines.append(machine)
            host.register(name, machine)
        yield pair
    finally:
        for machine in machines:
            host.forget(machine.name)
            machine.close()
        for state, ns in reversed(moved):
            nicstate.send_home(state, ns)


def _ledger_of(pid: int) -> dict:
    (path,) = RUN_DIR.glob(f"owner-{pid}-*.json")
    return json.loads(path.read_text())


def test_the_guard_on_another_host_refuses_the_link_its_ssh_session_rides(ssh_lab,
                                                                         hosts_with_nics):
    """A crossover asked of host a's management link (the one its sshd answers this session
    on): refused there before anything is moved on either host, naming it and why, also when
    the same name is allowed on this machine or on b (an allowance applies where it names);
    the session goes on."""
    a = host.machine("a")
    a_ns, b_ns = ssh_lab.hosts["a"].netns, ssh_lab.hosts["b"].netns
    with netlink.IPRoute(netns=a_ns, flags=0) as ipr:
        (index,) = [m["index"] for m in ipr.get_addr()
                    if m.get_attr("IFA_ADDRESS") == ssh_lab.hosts["a"].address]
        mgmt = ipr.get_links(index)[0].get_attr("IFLA_IFNAME")
    namespaces = sorted(os.listdir(netns.NETNS_DIR))
    for allow in ((), (mgmt, f"b:{mgmt}")):
        with pytest.raises(PktgenConfigError, match=rf"'a:{mgmt}' is not allowed; a test link: "
                           rf"{mgmt} has {ssh_lab.hosts['a'].address}, the local address of "
                           rf"an established TCP connection, .*--pktgen-allow-dev a:{mgmt},"):
            topology.crossover(topology.Nic.named(mgmt, "a"),
                               topology.Nic.named(hosts_with_nics.rx, "b"), allow_devices=allow)
    assert sorted(os.listdir(netns.NETNS_DIR)) == namespaces  # nothing made on either host
    netdev.link_info(hosts_with_nics.rx, netns=b_ns)  # b's NIC still where it was (or raises)
    assert netdev.link_info(mgmt, netns=a_ns)["up"]
    assert a.call(os.getpid) == a.facts["pid"]  # the session goes on


@pytest.fixture
def two_host_crossover(hosts_with_nics, request):
    pair = hosts_with_nics
    topo = topology.crossover(topology.Nic.named(pair.tx, "a"), topology.Nic.named(pair.rx, "b"))
    request.addfinalizer(topo.close)
    return topo


@pytest.mark.pktgen_sweep(frame=[64, 1500])
@pytest.mark.pktgen(count=4000, rounds=2)
def test_size_sweep_generator_on_host_a_counted_on_host_b(two_host_crossover, pktgen_bench,
                                                         pktgen_point):
    """pktgen_bench over a cable from host a to host b: pktgen's run on a, the receive
    counter on b, each made by that host's agent (its ledger lists the namespace it made)."""
    topo = two_host_crossover
    gen, sink = topo.tx[0], topo.sink
    assert (gen.host, sink.host, topo.generator_host) == ("a", "b", "a")
    a, b = host.machine("a"), host.machine("b")
    assert gen.netns in _ledger_of(a.facts["pid"])["namespaces"]
    assert sink.netns in _ledger_of(b.facts["pid"])["namespaces"]
    rx_before = netdev.link_stats(sink.ifname, netns=sink.netns).rx_packets
    tx_before = netdev.link_stats(gen.ifname, netns=gen.netns).tx_packets
    measured = pktgen_bench(topo, ratep=20000)
    row = measured.row
    assert measured.sent == 8000 and row.errors == 0
    assert row.device["host"] == "a" and row.rx_backend == "ifstats"
    # what b's counter said is what b's link received, and what a's link sent is pktgen's
    assert row.received == netdev.link_stats(sink.ifname, netns=sink.netns).rx_packets - rx_before
    assert netdev.link_stats(gen.ifname, netns=gen.netns).tx_packets - tx_before == 8000
    assert 8000 // 2 <= row.received <= 8000, f"the cable lost {8000 - row.received} of 8000"
    assert row.frame == pktgen_point.frame
    assert row.cpu is not None  # read on host a, where pktgen ran


@pytest.mark.parametrize("backend", ["ifstats", "tc", "nft", "kmod"])
def test_every_receive_backend_counts_on_a_sink_of_another_host(two_host_crossover, rx_counter,
                                                                backend):
    """Each counter made by host b's agent at b's end of the cable counts what that end's
    interface counters say arrived (the cable under TCG may lose some: the known answer is
    the link's own count); those after tc ingress drop what they count."""
    topo = two_host_crossover
    counter = rx_counter(topo, backend, **({"drop": True} if backend in AFTER_TC_INGRESS
                                           else {}))
    before = topo.sink.stats().rx_packets
    result = topo.run(topo.config(count=5000, pkt_size=60, ratep=20000))
    counted = counter.settled(result.sent)
    arrived = topo.sink.stats().rx_packets - before
    print(f"{backend} on host b: {counted.packets} of {result.sent} sent ({arrived} arrived)")
    assert result.sent == 5000 and 0 < counted.packets == arrived <= result.sent
    assert counter.backend == backend and topo.sink.host == "b"
    if backend in AFTER_TC_INGRESS:
        assert counted.dropped == counted.packets and topo.sink_mode == f"{backend}-drop"


def _masks(irqs) -> dict[int, int]:
    """Each IRQ's affinity, read here: every host of the lab is one kernel, IRQs are its own."""
    return {irq: int(read_mask(irq).replace(",", ""), 16) for irq in irqs}


def _cpu_off(masks: dict[int, int]) -> int:
    """A CPU none of the IRQs is limited to now: pinning them there changes every mask."""
    return next(cpu for cpu in (1, 0) if all(m != 1 << cpu for m in masks.values()))


def test_irqs_pinned_on_another_host_and_restored_when_it_is_lost(two_host_crossover, irq_pin,
                                                                  ssh_lab):
    """The receiving NIC is host b's: irq_pin(nic, cpu) pins its IRQs there (the paper's CPU:NIC
    1:1), where they fire is counted there, and the masks are restored as found; a pinning
    whose host is lost is restored by its agent, which had listed the masks in its ledger."""
    topo = two_host_crossover
    nic = topo.nics["rx"]
    assert nic.host == "b"
    irqs = nic.irqs
    before, found = _masks(irqs), {irq: read_mask(irq) for irq in irqs}
    cpu = _cpu_off(before)
    pinning = irq_pin(nic, cpu)
    assert pinning.saved == found  # b read what is here
    assert _masks(irqs) == {irq: 1 << cpu for irq in irqs}
    topo.run(topo.config(count=1000, pkt_size=60))  # an MSI moves at its next interrupt
    start = pinning.snapshot()
    topo.run(topo.config(count=20000, pkt_size=60, ratep=20000, thread=1 - cpu))
    on_cpu, total = pinning.fired(start)
    print(f"host b's NIC pinned to CPU {cpu}: {on_cpu} of {total} interrupts there")
    assert total > 0 and on_cpu / total >= 0.99
    pinning.close()
    assert _masks(irqs) == before

    b = ssh_lab.machine("b").connect()
    try:
        b.new(IrqPinning, irqs, cpu)
        assert _masks(irqs) == {irq: 1 << cpu for irq in irqs}
        assert set(_ledger_of(b.facts["pid"])["irqs"]) == {str(irq) for irq in irqs}
        b.sever()
        deadline = time.monotonic() + 10
        while _masks(irqs) != before:
            assert time.monotonic() < deadline, "the lost host's agent left its IRQs pinned"
            time.sleep(0.05)
    finally:
        b.close()


LATENCY_PACE = 2_000  # pps, as tests/integration/test_latency.py: no queue in front of netem
DELAY_MS = 2


def _netem(machine: str, end, delay_ms: int | None) -> None:
    """netem on a link of another host, through its agent (a test helper); None removes it."""
    args = (["qdisc", "replace", "dev", end.ifname, "root", "netem", "delay", f"{delay_ms}ms",
             "limit", "100000"] if delay_ms else ["qdisc", "del", "dev", end.ifname, "root"])
    done = host.on(end.netns, machine).run(["tc", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.pktgen(frame=64, count=2 * LATENCY_PACE, rounds=1, rx="kmod")
def test_latency_across_hosts_carries_the_clock_offset_and_moves_by_a_known_delay(
        two_host_crossover, pktgen_bench):
    """pgrx built and loaded on host b by this session, pktgen stamping on host a: each row's
    latency comes with the sink's clock minus the generator's (one kernel here: 0, within the
    measured uncertainty), and netem's 2 ms on a's link moves the median by its size."""
    topo = two_host_crossover
    # queue_xmit: pktgen's frames through the link's qdisc, where netem is (start_xmit, the
    # default, hands them to the driver past it)
    paced = {"ratep": LATENCY_PACE, "xmit_mode": "queue_xmit"}
    base = pktgen_bench(topo, label="no netem", **paced).row
    _netem("a", topo.tx[0], DELAY_MS)
    try:
        delayed = pktgen_bench(topo, label=f"netem {DELAY_MS} ms", **paced).row
    finally:
        _netem("a", topo.tx[0], None)
    for row in (base, delayed):
        print(f"{row.label}: p50 {row.lat_p50_us:,.0f} us, clocks {row.lat_clock_offset_us:+,.1f}"
              f" +- {row.lat_clock_uncertainty_us:,.1f} us, {row.lat_samples} samples")
        assert row.rx_backend == "kmod" and row.lat_samples == row.received > 0
        assert abs(row.lat_clock_offset_us) <= row.lat_clock_uncertainty_us
    moved, added = delayed.lat_p50_us - base.lat_p50_us, DELAY_MS * 1000
    assert abs(moved - added) <= added * 0.10 + 300, f"netem moved the median by {moved:,.0f} us"


def test_the_command_line_runs_the_size_sweep_across_hosts(hosts_with_nics, ssh_lab,
                                                           pytester, tmp_path):
    """The README's two-host walk-through: --pktgen-host names the hosts, --pktgen-dev and
    --pktgen-rx-dev their NICs; the example runs unchanged, the report names the hosts. The
    hosts' keys are trusted by the SSH config's UserKnownHostsFile, which is honoured though
    ~/.ssh/known_hosts exists (and trusts neither)."""
    pair = hosts_with_nics
    example = Path(__file__).resolve().parents[2] / "examples" / "test_size_sweep.py"
    pytester.makepyfile(test_size_sweep=example.read_text())
    (pytester.path / ".ssh").mkdir()  # pytester's HOME
    (pytester.path / ".ssh" / "known_hosts").write_text("")
    out = tmp_path / "out"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly",
        "--pktgen-host", "a=ssh://a", "--pktgen-host", "b=ssh://b",
        "--pktgen-ssh-config", str(ssh_lab.config),
        "--pktgen-dev", f"a:{pair.tx}", "--pktgen-rx-dev", f"b:{pair.rx}",
        "--pktgen-sizes", "64", "--pktgen-count", "4000", "--pktgen-repeats", "1",
        "--pktgen-param", "ratep=20000", "--pktgen-out", str(out), "--pktgen-no-plots")
    text = result.stdout.str()
    print(text[-4000:])
    assert result.ret == 0
    assert "pytest-pktgen: host a (ssh://a): " in text and "pytest-pktgen: host b (ssh://b)" in text
    results = json.loads((out / "results.json").read_text())
    assert set(results["environment"]["hosts"]) == {"a", "b"}
    rows = [r for r in results["results"] if r["clone_skb"] == 0]
    assert rows and all(r["received"] and r["received"] <= r["sent"] for r in rows)
    # the child's agents end with its connections: only this module's own (one a host) stay
    deadline = time.monotonic() + 10
    while len(_agent_pids(ssh_lab, "a")) + len(_agent_pids(ssh_lab, "b")) > 2:
        assert time.monotonic() < deadline, "the child session's agents outlived it"
        time.sleep(0.1)


# --- several generator hosts -------------------------------------------------------------------

@pytest.fixture(scope="module")
def third_host_nics(ssh_lab, lab_nic_pairs, hosts_with_nics):
    """The lab's second cable from host c to host b (beside the first, a to b), c connected
    and known by name."""
    pair = lab_nic_pairs[1]
    moved = []
    machine = None
    try:
        for ifname, name in ((pair.tx, "c"), (pair.rx, "b")):
            state = nicstate.before_moving(ifname)
            nicstate.move_away(state, ssh_lab.hosts[name].netns)
            moved.append((state, ssh_lab.hosts[name].netns))
        machine = ssh_lab.machine("c").connect()
        host.register("c", machine)
        yield pair
    finally:
        if machine is not None:
            host.forget("c")
            machine.close()
        for state, ns in reversed(moved):
            nicstate.send_home(state, ns)


# each run 2 s: the two hosts' starts (one call to each at once) land up to ~0.1 s apart under
# TCG, a quarter of a 0.4 s run, and the measurement fails as runs that did not overlap
@pytest.mark.pktgen(frame=64, count=20_000, rounds=1, warmup=0)
def test_two_generator_hosts_in_one_measurement(hosts_with_nics, third_host_nics, request,
                                                pktgen_bench):
    """pktgen_bench(a_to_b, c_to_b): hosts a and c load host b at once, every round set up on
    both, started together, one stop; the row sums what both sent (each paced at 10,000 pps:
    20,000 together) and what b counted at each of its ends. (Runs that did not overlap fail
    the measurement: seen with 0.4 s runs, `the generators' runs did not overlap (common
    0.325 s; a 0.000-0.412 s, c 0.087-0.488 s)`.)"""
    ab = topology.crossover(topology.Nic.named(hosts_with_nics.tx, "a"),
                            topology.Nic.named(hosts_with_nics.rx, "b"))
    request.addfinalizer(ab.close)
    cb = topology.crossover(topology.Nic.named(third_host_nics.tx, "c"),
                            topology.Nic.named(third_host_nics.rx, "b"), pair=1)
    request.addfinalizer(cb.close)
    sinks = (ab.sink, cb.sink)
    before = [end.stats().rx_packets for end in sinks]
    measured = pktgen_bench(ab, cb, ratep=10_000)
    row = measured.row
    arrived = sum(end.stats().rx_packets - n for end, n in zip(sinks, before, strict=True))
    print(f"a and c together: {row.pps:,.0f} pps, {row.sent} sent, {row.received} counted "
          f"({arrived} arrived); device {row.device['name']}")
    assert row.sent == 2 * 20_000 and row.received == arrived
    assert 0.9 * 20_000 <= row.pps <= 1.1 * 20_000
    assert row.device["host"] == "a+c" and row.device["name"].startswith("a:")
    for result in measured.rounds:  # every round: each host's device ran and sent its count
        assert sorted(name.split(":")[0] for name in result.devices) == ["a", "c"]
        assert all(status.result.sofar == 20_000 for status in result.devices.values())

def _endless_run(machine, ifname: str, dst_mac: str, duration: float):
    return RemoteRun(machine.name, machine.new(runner.PktgenRun, [DeviceConfig(ifname, {
        "count": 0, "pkt_size": 60, "ratep": 10000, "dst_mac": dst_mac})], duration=duration))


def test_two_generator_hosts_load_one_sink_with_one_stop_for_all(ssh_lab):
    """Hosts a and c each send over their own cable to host b for 2 s; one stop ends both.
    Every namespace of the guest reads one CLOCK_MONOTONIC: each host's measured offset must
    be 0 within its uncertainty (a known answer), and then pktgen's stamps of both hosts
    compare directly: every device ran before the first stop was written, anywhere."""
    (a_end, b_from_a), (c_end, b_from_c) = ssh_lab.cable("a", "b"), ssh_lab.cable("c", "b")
    b_ns = ssh_lab.hosts["b"].netns
    macs = {end: netdev.link_info(end, netns=b_ns)["mac"] for end in (b_from_a, b_from_c)}
    a = ssh_lab.machine("a").connect()
    c = ssh_lab.machine("c").connect()
    try:
        offsets = {"a": a.clock_offset(), "c": c.clock_offset()}
        for name, found in offsets.items():
            print(f"host {name}: clock offset {found}")
            assert abs(found.offset_ns) <= found.uncertainty_ns, (name, found)
        before = {end: netdev.link_stats(end, netns=b_ns).rx_packets for end in macs}
        runs = {"a": _endless_run(a, a_end, macs[b_from_a], 2.0),
                "c": _endless_run(c, c_end, macs[b_from_c], 2.0)}
        together = run_together(runs, offsets)
        assert together.together and not together.warning(), together.spans
        assert together.pps == sum(r.pps for r in together.results.values()) > 0
        first_stop = min(r.stop_written_us for r in together.results.values())
        for name, result in together.results.items():
            stopped_by_the_stop(result)
            for status in result.devices.values():
                assert stamps_us(status)[0] < first_stop, f"{name} started after a stop"
        arrived = {end: netdev.link_stats(end, netns=b_ns).rx_packets - before[end]
                   for end in macs}
        assert arrived == {b_from_a: together.results["a"].sent,
                           b_from_c: together.results["c"].sent}

        # one after the other: flagged, their pps not added up
        first = run_together({"a": _endless_run(a, a_end, macs[b_from_a], 1.0)}, offsets)
        second = run_together({"c": _endless_run(c, c_end, macs[b_from_c], 1.0)}, offsets)
        apart = MultiResult({**first.results, **second.results},
                            {**first.spans, **second.spans})
        assert not apart.together and apart.pps is None
        assert "the generators' runs did not overlap" in apart.warning()
    finally:
        a.close()
        c.close()
