"""Parsers against outputs captured from real runs in the VM lab, and the paper's Appendix B."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_pktgen.pktgen.parse import Result, parse_device, parse_pgctrl, parse_thread

DATA = Path(__file__).parents[1] / "data"
CAPTURED = DATA / "captured"


def read(name: str) -> str:
    return (CAPTURED / name).read_text()


def check_arithmetic(result: Result) -> None:
    """pktgen's own formulas: pps from sofar and elapsed, bps = pps * 8 * pkt_size."""
    assert result.busy_us + result.idle_us in (result.elapsed_us, result.elapsed_us - 1,
                                                result.elapsed_us + 1)
    if result.elapsed_us:
        assert result.pps == pytest.approx(result.sofar * 1e6 / result.elapsed_us, rel=1e-3)
    assert result.mbps == result.bps // 1_000_000


def test_ipv4_crossover_run():
    status = parse_device(read("device-ipv4-crossover.txt"))
    assert status.count == 20000
    assert status.params["ifname"] == "enp0s11"
    assert status.params["dst_min"] == "198.18.0.2"
    assert status.params["dst_max"] == ""
    assert status.params["src_min"] == "" and status.params["src_max"] == ""
    assert status.params["dst_mac"] == "02:50:47:00:00:02"
    assert status.params["udp_src_min"] == "9" and status.params["udp_src_max"] == "109"
    assert status.flags == ["UDPSRC_RND"]
    assert not status.ipv6
    assert status.sofar == 20000 and status.errors == 0
    assert status.current["seq_num"] == "20001"
    assert status.result_ok
    result = status.result
    assert (result.sofar, result.pkt_size, result.frags, result.errors) == (20000, 60, 0, 0)
    assert result.frame_size == 64
    assert result.bps == result.pps * 8 * 60
    check_arithmetic(result)


def test_ipv6_flows_run():
    status = parse_device(read("device-ipv6-flows.txt"))
    assert status.ipv6
    assert status.flags == ["IPV6", "UDPCSUM", "FLOW_SEQ"]
    assert status.params["saddr"] == "2001:2::1"
    assert status.params["daddr"] == "2001:2::2"
    assert status.params["min_daddr"] == "::"
    assert status.params["flows"] == "16" and status.params["flowlen"] == "4"
    assert status.params["traffic_class"] == "0x2e"
    assert status.current["cur_daddr"] == "2001:2::2"
    assert status.result.sofar == 5000 and status.result.pkt_size == 200
    check_arithmetic(status.result)


def test_dummy_clone_burst_frags():
    status = parse_device(read("device-dummy-clone-burst.txt"))
    assert status.params["ifname"] == "pgcap0@0"
    assert status.params["clone_skb"] == "100"
    assert status.params["burst"] == "8"
    assert status.params["frags"] == "2"
    assert status.params["dst_max"] == "198.18.1.200"
    assert status.flags == ["IPDST_RND", "NO_TIMESTAMP"]
    assert status.result.frags == 2 and status.result.pkt_size == 1496
    check_arithmetic(status.result)


def test_vlan_svlan_tos_and_size_range():
    status = parse_device(read("device-dummy-vlan-range.txt"))
    assert (status.params["min_pkt_size"], status.params["max_pkt_size"]) == ("100", "400")
    assert status.params["vlan_id"] == "42" and status.params["vlan_p"] == "3"
    assert status.params["svlan_id"] == "7"
    assert status.params["tos"] == "0xb8"
    assert status.params["skb_priority"] == "5"
    assert status.params["xmit_mode"] == "xmit_queue"  # the kernel's spelling of queue_xmit
    assert status.flags == ["TXSIZE_RND"]
    # with a size range the Result shows the current (last) size, not a configured one
    assert 100 <= status.result.pkt_size < 400
    check_arithmetic(status.result)


def test_mpls_and_imix():
    status = parse_device(read("device-dummy-mpls-imix.txt"))
    assert status.params["mpls"] == "0001000a, 0002000a"
    assert status.params["imix_weights"] == "64,7 594,4 1500,1"
    counts = dict(pair.split(",") for pair in status.current["imix_size_counts"].split())
    assert sum(int(n) for n in counts.values()) == status.result.sofar == 1000
    assert status.flags == []
    # in IMIX mode pktgen computes bps from the sizes it really sent
    imix_bits = sum(int(size) * int(n) for size, n in counts.items()) * 8
    assert status.result.bps == pytest.approx(imix_bits * 1e6 / status.result.elapsed_us, rel=1e-3)
    check_arithmetic(status.result)


def test_running_device_has_no_result_yet():
    status = parse_device(read("device-running.txt"))
    assert status.result_text == "Starting"
    assert status.result is None and not status.result_ok
    assert status.count == 0 and status.sofar > 0


def test_stopped_count0_run_and_paused_device():
    stopped = parse_device(read("device-stopped-count0.txt"))
    assert stopped.result.sofar == stopped.sofar > 0
    check_arithmetic(stopped.result)
    paused = parse_device(read("device-paused-no-skb.txt"))
    assert paused.params["delay"] == "18446744073709551615"
    assert paused.result.sofar == 0 and paused.result.pps == 0
    assert paused.result.frags == -1  # no skb held: the "-1frags" that breaks naive regexes


@pytest.mark.parametrize("name, starts", [
    ("result-no-such-parameter.txt", 'No such parameter "bogus"'),
    ("result-unknown-flag.txt", "Flag -:FOO:- unknown"),
    ("result-unknown-xmit-mode.txt", "xmit_mode -:fast:- unknown"),
    ("result-vlan-p-range.txt", "ERROR: vlan_p must be 0-7"),
])
def test_error_results(name, starts):
    status = parse_device(read(name))
    assert status.result_text.startswith(starts)
    assert status.result is None and not status.result_ok


def test_threads_and_pgctrl():
    running = parse_thread(read("thread-running.txt"))
    assert running.running == ["pgcap0"] and running.stopped == []
    assert running.result == "OK: add_device=pgcap0"
    stopped = parse_thread(read("thread-stopped.txt"))
    assert stopped.running == [] and stopped.devices == ["pgcap0"]
    assert parse_pgctrl(read("pgctrl.txt")) == "2.75"


def test_paper_appendix_b_2005_layout():
    status = parse_device((DATA / "paper-appendix-b.txt").read_text())
    assert status.count == 10_000_000
    assert status.params["clone_skb"] == "1000000"
    assert status.params["dst_min"] == "10.10.11.2"
    assert status.params["src_min"] == ""
    assert status.params["dst_mac"] == "00:07:E9:13:5C:3E"
    assert status.current["cur_daddr"] == "0x20b0a0a"
    assert status.errors == 39192
    result = status.result
    assert result == Result(elapsed_us=12774599, busy_us=11736818, idle_us=1037781,
                            sofar=10_000_000, pkt_size=64, frags=None, pps=782840, mbps=382,
                            bps=400814080, errors=39192)


def test_paper_thread_layout():
    text = "Name: kpktgend_0\nmax_before_softirq: 10000\nRunning:\nStopped: eth1\n" \
           "Result: OK: max_before_softirq=10000\n"
    thread = parse_thread(text)
    assert thread.stopped == ["eth1"] and thread.running == []


@pytest.mark.parametrize("text", ["", "Result: OK: 1\n", "Running: x\n"])
def test_not_a_device_file(text):
    with pytest.raises(ValueError, match="not a pktgen device file"):
        parse_device(text)


def test_parse_command_line_emits_json_lines(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("hello\n")
    files = [CAPTURED / "device-ipv4-crossover.txt", DATA / "paper-appendix-b.txt", bad]
    proc = subprocess.run([sys.executable, "-m", "pytest_pktgen", "parse", *map(str, files)],
                          capture_output=True, text=True)
    assert proc.returncode == 1  # one file was not a device file
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files[:2]]
    assert lines[0]["result"]["sofar"] == 20000
    assert lines[1]["result"]["pps"] == 782840 and lines[1]["result"]["frags"] is None
    assert "bad.txt: not a pktgen device file" in proc.stderr


@pytest.mark.parametrize("name, ipv6, encap, smallest", [
    ("device-ipv4-crossover.txt", False, 0, 58),     # 14 + 20 + 8 + pktgen's 16
    ("device-ipv6-flows.txt", True, 0, 78),          # 14 + 40 + 8 + 16
    ("device-dummy-vlan-range.txt", False, 8, 66),   # a VLAN and an SVLAN tag
    ("device-dummy-mpls-imix.txt", False, 8, 66),    # two MPLS labels
])
def test_the_smallest_frame_pktgen_builds_follows_its_headers(name, ipv6, encap, smallest):
    status = parse_device(read(name))
    assert (status.ipv6, status.encap_bytes, status.min_frame_built) == (ipv6, encap, smallest)
    assert status.frame_built == max(status.pkt_size, smallest)
    assert status.frame_sent == max(status.frame_built, 60) + 4


def test_a_report_names_no_single_frame_when_sizes_vary():
    """imix (and size ranges): no one frame was sent; the row keeps the point's frame and
    pktgen's own bps, which count the sizes it really sent."""
    from pytest_pktgen.measurement.point import Point
    from pytest_pktgen.measurement.row import Row
    from pytest_pktgen.run.runner import RunResult

    imix = parse_device(read("device-dummy-mpls-imix.txt"))
    fixed = parse_device(read("device-ipv6-flows.txt"))
    assert not imix.fixed_size and fixed.fixed_size

    def row(status, frame):
        run = RunResult(devices={"d": status}, configs={}, wall_s=1.0, stopped_by_us=False)
        return Row.of("t", "t", Point(frame=frame), None, [run])

    r = row(imix, 64)
    assert r.frame_sent == 64 and r.mbps == imix.result.bps / 1e6
    r = row(fixed, 204)  # IPv6 headers fit 200 bytes: sent as asked
    assert r.frame_sent == 204 and r.mbps == fixed.result.bps / 1e6


def test_several_runs_results_as_one_runs():
    """run/multi.combined: each run's devices as run:device, their figures added up."""
    from pytest_pktgen.pktgen.params import DeviceConfig
    from pytest_pktgen.run.multi import combined
    from pytest_pktgen.run.runner import RunResult

    status = parse_device((CAPTURED / "device-ipv4-crossover.txt").read_text())
    config = DeviceConfig("eth1", {"count": status.count})
    a = RunResult({"eth1": status}, {"eth1": config}, 1.5, False, stop_written_us=10,
                  stop_returned_us=20)
    c = RunResult({"eth1": status}, {"eth1": config}, 2.0, True, stop_written_us=12,
                  stop_returned_us=25)
    both = combined({"a": a, "c": c})
    assert list(both.devices) == ["a:eth1", "c:eth1"] and list(both.configs) == list(both.devices)
    assert (both.sent, both.pps) == (2 * a.sent, 2 * a.pps)
    assert (both.wall_s, both.stopped_by_us, both.stop_written_us, both.stop_returned_us) == (
        2.0, True, 10, 25)
