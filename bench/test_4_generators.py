"""4. Generators: pktgen driven by the plugin against trafgen (netsniff-ng), a scapy ``sendp``
loop and a plain Python AF_PACKET loop, on the same veth with the same 64-byte frame (60 bytes
without FCS, UDP to port 9). pps = frames counted at the sink / seconds the sender ran."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from pytest_pktgen.host import netns

FRAMES = {"pktgen": 1_000_000, "trafgen": 1_000_000, "scapy sendp": 20_000,
          "python AF_PACKET": 200_000}


def _frame(veth) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    tx, sink = veth.tx[0], veth.sink
    packet = (Ether(src=tx.mac, dst=sink.mac) / IP(src=tx.ip4, dst=sink.ip4) /
              UDP(sport=9, dport=9))
    raw = bytes(packet)
    return raw + bytes(60 - len(raw))


def _sink_received(veth) -> int:
    return veth.sink.stats().rx_packets


def _timed(veth, send) -> tuple[int, float]:
    before = _sink_received(veth)
    start = time.perf_counter()
    send()
    wall = time.perf_counter() - start
    time.sleep(0.2)  # let the sink's softirq drain
    return _sink_received(veth) - before, wall


def test_generators_side_by_side(veth, record, tmp_path):
    frame = _frame(veth)
    tx = veth.tx[0]
    rows = []

    def pktgen():
        result = veth.run(veth.config(count=FRAMES["pktgen"], pkt_size=60))
        rows_pktgen.append(result.pps)

    def trafgen():
        cfg = "{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }"
        proc = subprocess.run(["ip", "netns", "exec", tx.netns, "trafgen", "--dev", tx.ifname,
                               "--num", str(FRAMES["trafgen"]), "--cpus", "1", "-Q",
                               "-C", cfg], capture_output=True, text=True, timeout=600,
                              cwd=tmp_path)  # its shared mmap file: tmpfs, not the 9p checkout
        assert proc.returncode == 0, f"trafgen failed: {proc.stdout}{proc.stderr}"

    def scapy_sendp():
        from scapy.sendrecv import sendp

        netns.call_in(tx.netns, lambda: sendp(frame, iface=tx.ifname,
                                              count=FRAMES["scapy sendp"], verbose=False))

    def af_packet():
        def loop():
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
                sock.bind((tx.ifname, 0))
                send = sock.send
                for _ in range(FRAMES["python AF_PACKET"]):
                    send(frame)

        netns.call_in(tx.netns, loop)

    rows_pktgen: list[int] = []
    senders = {"pktgen": pktgen, "trafgen": trafgen, "scapy sendp": scapy_sendp,
               "python AF_PACKET": af_packet}
    if not shutil.which("trafgen"):
        del senders["trafgen"]
    for name, send in senders.items():
        received, wall = _timed(veth, send)
        rows.append({"generator": name, "frames": FRAMES[name], "received": received,
                     "seconds": wall, "pps": received / wall})
    ref = rows[0]["pps"]
    for row in rows:
        row["pktgen_x"] = ref / row["pps"] if row["pps"] else float("inf")
    notes = [f"pktgen's own figure: {rows_pktgen[0]:,} pps (the table's pktgen row counts the "
             "runner's start and stop too)",
             "pktgen_x = how many times pktgen's pps this generator's is below"]
    if "trafgen" not in senders:
        notes.append("trafgen missing: apt-get install netsniff-ng (make bench does)")
    record("4. Generators", "64 B frames over one veth, one sender at a time", rows, notes)
