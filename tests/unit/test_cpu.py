"""The CPU counters' parsers, on files captured in the VM lab after a run (tests/data/captured/),
and the cost per packet a row derives from them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pytest_pktgen.host import cpu
from pytest_pktgen.measurement.point import Point
from pytest_pktgen.measurement.row import Row
from pytest_pktgen.pktgen.parse import parse_device
from pytest_pktgen.run.runner import RunResult

CAPTURED = Path(__file__).parent.parent / "data" / "captured"


def test_softirq_time_and_network_softirqs_come_from_proc():
    stat = (CAPTURED / "proc-stat.txt").read_text()
    total = stat.splitlines()[0].split()
    assert total[0] == "cpu"
    assert cpu.softirq_ticks(stat) == int(total[7])  # user nice system idle iowait irq softirq
    per_cpu = sum(int(line.split()[7]) for line in stat.splitlines()
                  if line.startswith("cpu") and line[3].isdigit())
    assert abs(cpu.softirq_ticks(stat) - per_cpu) <= 2  # the CPUs' lines add up to it
    softirqs = (CAPTURED / "proc-softirqs.txt").read_text()
    tx, rx = cpu.net_softirqs(softirqs)
    rows = {line.split(":")[0].strip(): line for line in softirqs.splitlines()}
    assert tx == sum(int(x) for x in rows["NET_TX"].split(":")[1].split())
    assert rx == sum(int(x) for x in rows["NET_RX"].split(":")[1].split())
    assert tx + rx > 0


def test_a_snapshot_finds_pktgens_threads_and_sums_their_run_time(tmp_path, monkeypatch):
    """A /proc of the captured files: the kpktgend thread found by its comm, its schedstat's
    nanoseconds taken, the other processes left out; a difference of two snapshots."""
    proc = tmp_path / "proc"
    for pid, comm in ((7, None), (8, "bash\n")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(
            comm or (CAPTURED / "proc-kpktgend-comm.txt").read_text())
        (proc / str(pid) / "schedstat").write_text(
            (CAPTURED / "proc-kpktgend-schedstat.txt").read_text())
    (proc / "self").mkdir()
    shutil.copy(CAPTURED / "proc-stat.txt", proc / "stat")
    shutil.copy(CAPTURED / "proc-softirqs.txt", proc / "softirqs")
    monkeypatch.setattr(cpu, "_comms", {})
    assert cpu.pktgen_pids(proc) == [7]
    now = cpu._now(proc)
    runtime = int((CAPTURED / "proc-kpktgend-schedstat.txt").read_text().split()[0])
    assert now.pktgen_ns == runtime > 0
    assert now.softirq_ns == cpu.softirq_ticks((proc / "stat").read_text()) * (
        1_000_000_000 // os.sysconf("SC_CLK_TCK"))
    assert now - now == cpu.CpuTimes()
    assert (now + now).pktgen_ns == 2 * runtime


def test_a_rows_cost_per_packet():
    status = parse_device((CAPTURED / "device-ipv4-crossover.txt").read_text())
    run = RunResult(devices={"d": status}, configs={}, wall_s=1.0, stopped_by_us=False)
    spent = cpu.CpuTimes(pktgen_ns=int(status.result.elapsed_us * 1e3 * 0.5),
                         softirq_ns=4_000_000, net_tx=3, net_rx=5)
    row = Row.of("t", "t", Point(), None, [run], cpu=spent)
    assert row.cpu_pktgen_ns == spent.pktgen_ns / run.offered
    assert row.cpu_softirq_ns == 4_000_000 / run.offered
    assert row.pktgen_busy == pytest.approx(0.5)  # half of pktgen's elapsed time on its CPU
    assert (row["net_tx_softirqs"], row["net_rx_softirqs"]) == (3, 5)
    assert Row.of("t", "t", Point(), None, [run]).cpu_cost() == {}  # not measured: no columns
