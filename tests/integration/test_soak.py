"""Soak: 200 short pktgen runs in child pytest sessions, a quarter of them interrupted by SIGINT
or SIGTERM mid-run; afterwards not one namespace, link, pktgen device or IRQ mask is left changed.

Each child is a pytest session forked from this one (pytest and the plugin already imported: a
fresh interpreter costs seconds under TCG) that runs three complete runs on one veth topology and
then a fourth, endless one on another, with the lab NIC's IRQs pinned, until the signal comes.
``PKTGEN_SOAK_RUNS`` scales it (a multiple of 4; 200 by default, as `make soak` runs it; `make
test` runs 12 to stay in CI's time budget, and says so in a warning).
"""

from __future__ import annotations

import inspect
import os
import random
import select
import signal
import sys
import time
import warnings

import pytest
from leftovers import state

from pytest_pktgen.pktgen.proc import Pktgen

pytestmark = pytest.mark.integration

RUNS = int(os.environ.get("PKTGEN_SOAK_RUNS", "200"))
FULL = 200
RUNS_PER_CHILD = 4  # three complete, the fourth interrupted: a quarter

CHILD = """
import os

from pytest_pktgen.run.runner import PktgenRun


def test_three_complete_runs(veth):
    for _ in range(3):
        result = veth.run(veth.config(count=2000, pkt_size=60))
        assert result.sent == 2000


def test_interrupted_run(veth, irq_pin, lab_nic_pairs):
    from pytest_pktgen.host.netdev import nic_irqs

    irq_pin(nic_irqs(lab_nic_pairs[0].rx), 1)
    config = veth.config(count=0, pkt_size=60, ratep=5000)
    with PktgenRun([config], pktgen=veth.pktgen, duration=300) as run:
        run.start()
        os.write(int(os.environ["SOAK_FD"]), b"RUNNING\\n")
        run.wait()
    raise AssertionError("the signal never came")
"""


def _fork_session(path, log_path) -> tuple[int, int]:
    """A child pytest session on ``path``; returns (pid, fd that says RUNNING)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a pytest session of its own, then out without our teardown
        code = 99
        try:
            os.close(read_fd)
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            # our sys.stdout may be pytest's capture of this session, not fd 1
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            os.environ["SOAK_FD"] = str(write_fd)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the child session installs its own
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.chdir(path)
            code = int(pytest.main(["-p", "no:cacheprovider", "-q",
                                    "-s", "test_soak_child.py"]))
        finally:
            sys.stdout.flush()  # os._exit does not flush what the session printed
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _reap(pid: int, timeout: float) -> int | None:
    """The child's wait status, or None if it did not end in time (then it is killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _wait_running(fd: int, timeout: float) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready) and b"RUNNING" in os.read(fd, 64)


def test_soak_200_runs_a_quarter_interrupted(pytester, lab_nic_pairs, pktgen_module):
    assert RUNS % RUNS_PER_CHILD == 0, "PKTGEN_SOAK_RUNS must be a multiple of 4"
    if RUNS < FULL:
        warnings.warn(f"SOAK REDUCED to {RUNS} runs by PKTGEN_SOAK_RUNS (CI's time budget: a "
                      f"child session takes ~10 s under TCG); `make soak` runs the full {FULL}",
                      stacklevel=1)
    pytester.makepyfile(test_soak_child=CHILD)
    # pytest reports a KeyboardInterrupt with source lines, and inspect.getmodule() then takes
    # the realpath of every module loaded (thousands here, over 9p under TCG: ~25 s). Done once
    # now, its cache is inherited by every forked child.
    inspect.getmodule(test_soak_200_runs_a_quarter_interrupted.__code__)
    before = state()
    rng = random.Random(7)
    completed = interrupted = 0
    started = time.monotonic()
    for child in range(RUNS // RUNS_PER_CHILD):
        signum = (signal.SIGINT, signal.SIGTERM)[child % 2]
        log = pytester.path / f"child{child}.log"
        pid, fd = _fork_session(pytester.path, log)
        child_start = time.monotonic()
        try:
            running = _wait_running(fd, 120)
            if running:
                time.sleep(rng.uniform(0, 0.5))  # somewhere in the run, not always its start
            os.kill(pid, signum)
            status = _reap(pid, 60)
        finally:
            os.close(fd)
        text = log.read_text()
        print(f"soak child {child}: {signum.name} after {time.monotonic() - child_start:.1f}s",
              flush=True)
        assert running, f"child {child} never started its endless run:\n{text[-3000:]}"
        assert status is not None, f"child {child} ignored {signum.name} for 60 s (killed):\n" \
                                   f"{text[-3000:]}"
        code = os.waitstatus_to_exitcode(status)
        assert code == pytest.ExitCode.INTERRUPTED, f"child {child} exit {code}:\n{text[-3000:]}"
        assert "1 passed" in text, text[-2000:]  # the three complete runs
        completed += 3
        interrupted += 1
    elapsed = time.monotonic() - started
    print(f"soak: {completed + interrupted} runs ({completed} complete, {interrupted} "
          f"interrupted by SIGINT/SIGTERM) in {elapsed:.0f}s")
    after = state()
    for key in ("netns", "our_links", "links", "irq_masks", "modules"):
        assert after[key] == before[key], key
    assert Pktgen().devices() == []
    assert completed + interrupted == RUNS and interrupted * 4 == RUNS
