"""Ctrl-C and SIGTERM of a pytest session in the middle of a run leave nothing behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from pytest_pktgen.netlink import netns as pr_netns

pytestmark = pytest.mark.integration

CHILD = '''
import time

def test_interrupted(veth, pktgen):
    config = veth.config(count=0, pkt_size=60, ratep=5000)
    from pytest_pktgen.runner import PktgenRun
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
