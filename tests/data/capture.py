"""Capture real pktgen outputs for the parser tests: `make capture` runs this in the VM lab.

Each capture is the byte-for-byte text of a /proc/net/pktgen file at a known moment, saved in
tests/data/captured/; the file KERNEL there names the kernel they came from.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_pktgen import DeviceConfig, PktgenRun
from pytest_pktgen.errors import PktgenResultError, PktgenWriteError
from pytest_pktgen.host.netdev import set_state
from pytest_pktgen.host.netlink import IPRoute

OUT = Path(__file__).parent / "captured"


def save(name: str, text: str, kernel: str) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / name).write_text(text)
    (OUT / "KERNEL").write_text(kernel + "\n")


@pytest.fixture
def dummy():
    with IPRoute() as ipr:
        ipr.link("add", ifname="pgcap0", kind="dummy")
        set_state("pgcap0", "up", ipr)
        yield "pgcap0"
        ipr.link("del", ifname="pgcap0")


def finished_run(pktgen, config: DeviceConfig, **kwargs) -> str:
    with PktgenRun([config], pktgen=pktgen, **kwargs) as run:
        run.start()
        run.wait()
        run.stop()
        run.collect()
        return pktgen.device_path(config.device).read_text()


def test_capture_crossover(pktgen, pktgen_module, lab_nic_pairs):
    pair = lab_nic_pairs[0]
    kernel = pktgen_module.kernel_release
    save("pgctrl.txt", (pktgen.dir / "pgctrl").read_text(), kernel)
    config = DeviceConfig(pair.tx, {"count": 20000, "pkt_size": 60, "dst": "198.18.0.2",
                                    "dst_mac": pair.rx_mac, "udp_src_min": 9,
                                    "udp_src_max": 109}, flags=["UDPSRC_RND"])
    save("device-ipv4-crossover.txt", finished_run(pktgen, config), kernel)
    v6 = DeviceConfig(pair.tx, {"count": 5000, "pkt_size": 200, "dst6": "2001:2::2",
                                "src6": "2001:2::1", "dst_mac": pair.rx_mac, "flows": 16,
                                "flowlen": 4, "traffic_class": "2e"},
                      flags=["UDPCSUM", "FLOW_SEQ"])
    save("device-ipv6-flows.txt", finished_run(pktgen, v6), kernel)


def test_capture_dummy(pktgen, pktgen_module, dummy):
    kernel = pktgen_module.kernel_release
    clone = DeviceConfig(f"{dummy}@0", {"count": 50000, "pkt_size": 1496, "clone_skb": 100,
                                        "burst": 8, "dst_min": "198.18.1.1",
                                        "dst_max": "198.18.1.200", "frags": 2,
                                        "dst_mac": "02:00:00:00:00:02"},
                         flags=["IPDST_RND", "NO_TIMESTAMP"])
    save("device-dummy-clone-burst.txt", finished_run(pktgen, clone), kernel)
    tagged = DeviceConfig(dummy, {"count": 1000, "min_pkt_size": 100, "max_pkt_size": 400,
                                  "vlan_id": 42, "vlan_p": 3, "svlan_id": 7, "tos": "b8",
                                  "skb_priority": 5, "queue_map_min": 0, "queue_map_max": 0,
                                  "xmit_mode": "queue_xmit", "dst": "198.18.2.1"},
                          flags=["TXSIZE_RND"])
    save("device-dummy-vlan-range.txt", finished_run(pktgen, tagged), kernel)
    mpls = DeviceConfig(dummy, {"count": 1000, "pkt_size": 124, "mpls": ["0001000a", "0002000a"],
                                "imix_weights": [(64, 7), (594, 4), (1500, 1)],
                                "dst": "198.18.2.1"})
    save("device-dummy-mpls-imix.txt", finished_run(pktgen, mpls), kernel)

    # A run read while going, the thread file then, and a paused device stopped before its
    # first packet (no skb held: "-1frags").
    running = DeviceConfig(dummy, {"count": 0, "pkt_size": 60, "dst": "198.18.2.1"})
    paused = DeviceConfig(f"{dummy}@1", {"count": 0, "delay": 2147483647, "dst": "198.18.2.1"},
                          thread=1 if len(pktgen.threads()) > 1 else 0)
    with PktgenRun([running, paused], pktgen=pktgen, duration=5) as run:
        run.start()
        time.sleep(1.0)
        save("device-running.txt", pktgen.device_path(dummy).read_text(), kernel)
        save("thread-running.txt", pktgen.thread_path(0).read_text(), kernel)
        run.stop()
        run.collect()
        save("device-stopped-count0.txt", pktgen.device_path(dummy).read_text(), kernel)
        save("device-paused-no-skb.txt", pktgen.device_path(paused.device).read_text(), kernel)
        save("thread-stopped.txt", pktgen.thread_path(0).read_text(), kernel)

    # What the kernel answers to mistakes, for the error-text parsers.
    with PktgenRun([DeviceConfig(dummy, {"count": 1})], pktgen=pktgen) as run:
        for command, name in (("bogus 1", "result-no-such-parameter.txt"),
                              ("flag FOO", "result-unknown-flag.txt"),
                              ("xmit_mode fast", "result-unknown-xmit-mode.txt"),
                              ("vlan_p 9", "result-vlan-p-range.txt")):
            with pytest.raises((PktgenWriteError, PktgenResultError)):
                pktgen.device_command(dummy, command)
            save(name, pktgen.device_path(dummy).read_text(), kernel)


def test_capture_pgrx(veth, rx_counter, pktgen_module):
    """/proc/net/pgrx after 10000 frames with every 7th dropped by nftables at ingress."""
    import subprocess

    from pytest_pktgen.host.netns import call_in

    sink = veth.sink
    script = f"""
        table netdev pgloss {{
            chain ingress {{
                type filter hook ingress device {sink.ifname} priority 0;
                udp dport 9 numgen inc mod 7 == 0 drop
            }}
        }}"""
    call_in(sink.netns, lambda: subprocess.run(["nft", "-f", "-"], input=script, text=True,
                                               check=True))
    kmod = rx_counter(veth, "kmod")
    veth.run(veth.config(count=10_000, pkt_size=60))
    save("pgrx-veth-every7th-dropped.txt", kmod.raw(), pktgen_module.kernel_release)


def test_capture_pgrx_sampled(veth, rx_counter, pktgen_module):
    """/proc/net/pgrx after 10000 frames, latency sampled at one sequence number in 16."""
    kmod = rx_counter(veth, "kmod", latency_every=16)
    veth.run(veth.config(count=10_000, pkt_size=60))
    save("pgrx-veth-latency-every16.txt", kmod.raw(), pktgen_module.kernel_release)


def test_capture_cpu_counters(dummy, pktgen, pktgen_module):
    """/proc/stat, /proc/softirqs and a pktgen thread's /proc/<pid>/schedstat and comm right
    after a run on a dummy."""
    from pytest_pktgen.host import cpu

    finished_run(pktgen, DeviceConfig(dummy, {"count": 100_000, "pkt_size": 60}))
    kernel = pktgen_module.kernel_release
    save("proc-stat.txt", Path("/proc/stat").read_text(), kernel)
    save("proc-softirqs.txt", Path("/proc/softirqs").read_text(), kernel)
    pid = min(cpu.pktgen_pids())
    for name in ("schedstat", "comm"):
        save(f"proc-kpktgend-{name}.txt", Path(f"/proc/{pid}/{name}").read_text(), kernel)


SESSION = """
import pytest

@pytest.mark.pktgen_sweep(frame=[64, 1500])
def test_veth(veth, pktgen_bench, pktgen_point):
    pktgen_bench(veth, ratep={slow} if pktgen_point.frame == 1500 else 20000)
"""


def test_capture_sessions(pytester):
    """Two real sessions as results.json keeps them, for the comparisons' tests: the same veth
    sweep counted and timed by pgrx, 5 rounds each of 10,000 frames paced at 20,000 pps, the
    second with its 1500 B point at 18,000 pps (known: a ratio of 0.900); the rest unchanged."""
    # what the nested sessions import, once in this process (pytester unloads what they load,
    # and numpy's kind cannot be imported twice)
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401

    kernel = Path("/proc/sys/kernel/osrelease").read_text().strip()
    for name, slow in (("before", 20000), ("after", 18000)):
        pytester.makepyfile(test_sessions=SESSION.format(slow=slow))
        out = pytester.path / name
        result = pytester.runpytest("--pktgen-count", "10000", "--pktgen-repeats", "5",
                                    "--pktgen-rx", "kmod", "--pktgen-no-plots",
                                    f"--pktgen-out={out}", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=2)
        save(f"results-veth-paced-{name}.json", (out / "results.json").read_text(), kernel)
