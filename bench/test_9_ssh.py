"""9. Other hosts over SSH: what driving pktgen and the counter over SSH costs a sweep point.

The same points (64 and 1500 B frames, paced, counted at the sink) over the lab's first
cable, side by side in one run: the crossover built here (both NICs in this guest's
namespaces, pktgen and the counter driven directly) and built across two SSH hosts (the
cable's ends moved into host a and host b, namespaces of the guest with their own sshd;
pktgen's run on a, the counter on b, each through its agent). A point's wall time is
everything it takes: the counter reset, the run's setup, start, wait, stop and collection,
the count settled. Pairs alternate which goes first. Target: under 10 % overhead per point.
"""

from __future__ import annotations

import statistics
import time

import pytest

from pytest_pktgen import host
from pytest_pktgen.host import nicstate
from pytest_pktgen.lab import rx, topology
from pytest_pktgen.lab.hosts import SshLab

pytestmark = pytest.mark.integration

FRAMES = (64, 1500)
COUNT = 20_000
PACE = 20_000  # pps: a point of about a second, as a short sweep's
PAIRS = 5


def _point(topo, counter, frame: int) -> float:
    t0 = time.monotonic()
    result = topo.run(topo.config(count=COUNT, pkt_size=frame - 4, ratep=PACE), rx=[counter])
    took = time.monotonic() - t0
    assert result.sent == COUNT and 0 < result.received["ifstats"].packets <= COUNT
    return took


def test_a_sweep_point_here_and_over_ssh(lab_nic_pairs, pktgen_module, record):
    if len(lab_nic_pairs) < 2:
        pytest.skip("two NIC pairs needed (--pktgen-vm-nics 2, the default)")
    here_pair, far_pair = lab_nic_pairs[1], lab_nic_pairs[0]
    rows = []
    with SshLab(["a", "b"]) as lab:
        moved, machines, built = [], [], []
        try:
            for ifname, name in ((far_pair.tx, "a"), (far_pair.rx, "b")):
                state = nicstate.before_moving(ifname)
                nicstate.move_away(state, lab.hosts[name].netns)
                moved.append((state, lab.hosts[name].netns))
            t0 = time.monotonic()
            for name in ("a", "b"):
                machines.append(lab.machine(name).connect())
                host.register(name, machines[-1])
            connect_s = time.monotonic() - t0
            here = topology.crossover(topology.Nic.named(here_pair.tx),
                                      topology.Nic.named(here_pair.rx))
            built.append(here)
            far = topology.crossover(topology.Nic.named(far_pair.tx, "a"),
                                     topology.Nic.named(far_pair.rx, "b"))
            built.append(far)
            counters = {"here": rx.IfStatsCounter(here.sink.ifname, here.sink.netns),
                        "ssh": host.new_on("b", rx.IfStatsCounter, far.sink.ifname,
                                           far.sink.netns)}
            topos = {"here": here, "ssh": far}
            for who in topos:  # warm-up: first probes and imports on each side
                _point(topos[who], counters[who], FRAMES[0])
            for n in range(PAIRS):
                order = ("here", "ssh") if n % 2 == 0 else ("ssh", "here")
                for frame in FRAMES:
                    took = {who: _point(topos[who], counters[who], frame) for who in order}
                    rows.append({"pair": n + 1, "frame": frame, "order": "/".join(order),
                                 "here_s": took["here"], "ssh_s": took["ssh"],
                                 "overhead": took["ssh"] / took["here"] - 1})
            counters["ssh"].close()
        finally:
            for topo in reversed(built):
                topo.close()
            for machine in machines:
                host.forget(machine.name)
                machine.close()
            for state, ns in reversed(moved):
                nicstate.send_home(state, ns)
    measured = list(rows)
    for frame in FRAMES:
        mine = [r for r in measured if r["frame"] == frame]
        rows.append({"pair": "median", "frame": frame, "order": "",
                     **{k: statistics.median(r[k] for r in mine)
                        for k in ("here_s", "ssh_s", "overhead")}})
    here_runs = [r["here_s"] for r in measured]
    noise = (max(here_runs) - min(here_runs)) / statistics.median(here_runs)
    record("9. ssh", f"a sweep point here and over SSH: {COUNT:,} frames at {PACE:,} pps over "
           f"a cable of the lab, counted at the sink, {PAIRS} pairs per frame size, "
           "alternating which goes first", rows, [
               "here = a crossover on the lab's second cable, both ends in this guest's "
               "namespaces; ssh = one on its first cable, the ends on hosts a and b "
               "(namespaces with their own sshd), pktgen's run on a and the counter on b "
               "through their agents; a point = counter reset, run setup/start/wait/stop/"
               "collect, count settled (the topology's build is not in it)",
               f"connecting both hosts (sshd, python3, the package sent) took {connect_s:.1f} s, "
               "once per session",
               f"noise floor: the 'here' points' own spread, (max - min) / median = {noise:.1%}",
           ])
    print(f"overhead medians: {[r['overhead'] for r in rows if r['pair'] == 'median']}")
