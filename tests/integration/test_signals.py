"""Ctrl-C and SIGTERM of a pytest session in the middle of a run leave nothing behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import nics
import pytest
from leftovers import state

from pytest_pktgen.host.netdev import nic_irqs
from pytest_pktgen.host.netlink import netns as pr_netns
from pytest_pktgen.pktgen.proc import Pktgen

pytestmark = pytest.mark.integration

CHILD = '''
import time

def test_interrupted(veth, pktgen):
    config = veth.config(count=0, pkt_size=60, ratep=5000)
    from pytest_pktgen.run.runner import PktgenRun
    with PktgenRun([config], pktgen=veth.pktgen, duration=120) as run:
        run.start()
        print("RUNNING", flush=True)
        run.wait()
'''


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_cleans_up(pytester, signum, pktgen_module):
    ours_before = [n for n in pr_netns.listnetns() if n.startswith("pg")]
    pytester.makepyfile(test_child=CHILD)
    child = subprocess.Popen([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider",
                              "test_child.py"], cwd=pytester.path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    for line in child.stdout:
        lines.append(line)
        if "RUNNING" in line or time.monotonic() > deadline:
            break
    assert any("RUNNING" in line for line in lines), "".join(lines)
    during = [n for n in pr_netns.listnetns() if n.startswith("pg")]
    assert len(during) > len(ours_before)  # the child's namespaces exist while it runs
    child.send_signal(signum)
    out = child.stdout.read()
    assert child.wait(timeout=60) == pytest.ExitCode.INTERRUPTED, out
    assert [n for n in pr_netns.listnetns() if n.startswith("pg")] == ours_before


KILLED = '''
import time

from pytest_pktgen.pktgen.params import DeviceConfig
from pytest_pktgen.pktgen.proc import Pktgen
from pytest_pktgen.run.runner import PktgenRun


def test_killed(crossover, lab_nic_pairs, irq_pin):
    irq_pin(crossover.nics["rx"], 1)
    crossing = crossover.prepare(crossover.config(count=0, pkt_size=60, ratep=5000), duration=120)
    crossing.setup()
    crossing.start()
    spare = DeviceConfig(lab_nic_pairs[1].tx, {"count": 0, "pkt_size": 60, "ratep": 5000,
                                               "dst": "198.18.0.2", "dst_mac": "02:50:47:ff:ff:ff"})
    here = PktgenRun([spare], pktgen=Pktgen(), duration=120)
    here.setup()
    here.start()
    print("RUNNING", flush=True)
    time.sleep(120)
'''


def _wait_for(child, word: str) -> str:
    lines = []
    for line in child.stdout:
        lines.append(line)
        if word in line:
            return line
    raise AssertionError("".join(lines))


def test_sigkill_mid_run_the_next_session_cleans_up(pytester, lab_nic_pairs, pktgen_module):
    """SIGKILL runs no undo at all: the killed session's crossover NICs stay in its namespaces,
    its pktgen device on a NIC here stays on its thread and the receiving NIC's IRQs stay
    pinned to CPU 1. The next session finds them by the dead session's ledger and lock, undoes
    them before it starts, and says so."""
    pair, spare = lab_nic_pairs[0], lab_nic_pairs[1].tx
    with nics.dressed(pair.tx, 90, ipv6=False):
        before, tx_view = state(), nics.view(pair.tx)
        rx_irqs = [str(irq) for irq in nic_irqs(pair.rx)]  # as the killed session lists them
        pytester.makepyfile(test_killed=KILLED)
        child = subprocess.Popen([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider",
                                  "test_killed.py"], cwd=pytester.path, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        _wait_for(child, "RUNNING")
        child.kill()
        child.wait(timeout=60)
        left = state()
        assert len(left["netns"]) == len(before["netns"]) + 2  # its generator and sink
        assert rx_irqs and all(left["irq_masks"][n] != before["irq_masks"][n] for n in rx_irqs)
        assert pair.tx not in left["links"] and pair.rx not in left["links"]
        assert Pktgen().devices() == [spare]
        pytester.makepyfile(test_next="def test_next():\n    pass\n")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_next.py")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([
            f"pytest-pktgen: cleaned up after dead process {child.pid}: sent {pair.tx} home from "
            f"pgg*, restored as found; sent {pair.rx} home from pgs*, restored as found; removed "
            f"namespace(s) pg*, pg*; restored the affinity of IRQ(s) {', '.join(rx_irqs)} as "
            "found",
            f"pytest-pktgen: removed pktgen devices ['{spare}'] that process {child.pid} left in "
            f"namespace (this one) when it died"])
        after = state()
        assert (after["netns"], after["links"]) == (before["netns"], before["links"])
        assert after["irq_masks"] == before["irq_masks"]
        assert nics.differences(tx_view, nics.view(pair.tx)) == []
        assert Pktgen().devices() == []


HELD = '''
import subprocess
import sys
import time

from pytest_pktgen.host import netns, nicstate

ns = netns.create("pgh")
nicstate.move_away(nicstate.before_moving(sys.argv[1]), ns)
# a process of its own in the namespace (started from a thread inside it), outliving this one
holder = netns.call_in(ns, lambda: subprocess.Popen(["sleep", "600"], start_new_session=True))
print("MOVED", ns, holder.pid, flush=True)
time.sleep(600)
'''


def test_a_nic_held_away_stays_in_the_ledger_until_it_is_home_then_comes_back_exactly(
        lab_nic_pairs):
    """A killed process moved a lab NIC into its namespace, whose name is gone while a
    leftover process keeps it alive: the NIC cannot come home. The cleaner says so and keeps
    it in that ledger (never deletes what it could not restore); once the holder exits, the
    kernel sends the NIC home and the next cleaner restores it exactly as it was found."""
    from pytest_pktgen.host import netns
    from pytest_pktgen.run import leftovers

    nic = lab_nic_pairs[1].rx
    with nics.dressed(nic, 91, ipv6=False):
        view = nics.view(nic)
        pid, (ns, holder) = nics.killed(HELD, nic, said="MOVED")
        netns.remove(ns)  # its name gone; the holder still in it
        try:
            said, complete = leftovers.clean(home_timeout=1)
            text = "\n".join(said)
            assert not complete
            assert (f"cleaned up after dead process {pid}: {nic}: {nic} did not come "
                    "back from its namespace within 1s; kept for the next cleaner") in text
            assert "stays in" in text
            assert nic not in state()["links"]
        finally:
            subprocess.run(["kill", "-9", holder])
        said, complete = leftovers.clean()
        assert complete, said
        assert said == [f"cleaned up after dead process {pid}: sent {nic} home from {ns}, "
                        "restored as found"]
        assert nics.differences(view, nics.view(nic)) == []
        assert leftovers.clean() == ([], True)  # nothing kept any more
