"""2. Overhead: a 7-size sweep's wall time against the sum of pktgen's own elapsed time, and the
cost of each phase of a point (set up devices, run, collect and remove)."""

from __future__ import annotations

import time

SIZES = [64, 128, 256, 512, 1024, 1280, 1500]
COUNT = 200_000


def test_sweep_overhead(veth, record):
    rows = []
    sweep_start = time.perf_counter()
    for frame in SIZES:
        t0 = time.perf_counter()
        run = veth.prepare(veth.config(count=COUNT, pkt_size=frame - 4))
        run.setup()
        t1 = time.perf_counter()
        run.start()
        finished = run.wait()
        t2 = time.perf_counter()
        result = run.finish(finished)
        t3 = time.perf_counter()
        elapsed = max(s.result.elapsed_us for s in result.devices.values()) / 1e6
        rows.append({"frame": frame, "pps": result.pps, "pktgen_s": elapsed,
                     "setup_s": t1 - t0, "run_wall_s": t2 - t1, "collect_remove_s": t3 - t2,
                     "point_wall_s": t3 - t0, "overhead": (t3 - t0) / elapsed - 1})
    sweep_wall = time.perf_counter() - sweep_start
    pktgen_total = sum(r["pktgen_s"] for r in rows)
    rows.append({"frame": "sum", "pps": "", "pktgen_s": pktgen_total,
                 "setup_s": sum(r["setup_s"] for r in rows),
                 "run_wall_s": sum(r["run_wall_s"] for r in rows),
                 "collect_remove_s": sum(r["collect_remove_s"] for r in rows),
                 "point_wall_s": sweep_wall, "overhead": sweep_wall / pktgen_total - 1})
    record("2. Overhead", f"7-size sweep on veth, {COUNT:,} packets per point", rows, [
        f"sweep wall {sweep_wall:.2f} s against pktgen's own {pktgen_total:.2f} s: "
        f"ratio {sweep_wall / pktgen_total:.3f}",
        "run_wall_s - pktgen_s is the start/stop latency the runner adds (start write in a "
        "thread, joins at 250 ms sampling at most)",
    ])
