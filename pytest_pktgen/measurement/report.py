"""Reports: every measurement of a session as a row, shown as a table per sweep, written as CSV
and JSON (pandas) with the environment fingerprint, and plotted (pps and Mb/s against frame size).

Units, as every report states them: ``frame`` is bytes on the wire with the 4-byte FCS,
``pkt_size`` is what pktgen sends (frame - 4); ``frame_sent`` is the frame pktgen really sent,
larger than ``frame`` when its headers do not fit (IPv6, VLAN/SVLAN tags, MPLS labels and its
own 16 bytes: a 64 B IPv6 point sends 82 B); ``pps`` and ``mbps`` are pktgen's own figures
(``mbps`` counts pkt_size bytes, no FCS; of frame_sent when it grew); ``l1_mbps`` adds FCS,
preamble and inter-frame gap (frame_sent + 20 bytes), the line rate a NIC's datasheet means.
``sent`` is what the driver accepted (pktgen's pkts-sofar), ``errors`` what it refused
(NET_XMIT_DROP, e.g. a veth peer's full backlog: pktgen then sends another frame in its place),
``offered`` = sent + errors, and ``loss`` = offered - received: a refused frame is a lost
frame, never hidden.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..pktgen.params import pkt_size_of
from .point import AXES, AXIS_COLUMNS

UNITS = ("frame = bytes on the wire with the 4-byte FCS; pkt_size = frame - 4, as pktgen counts "
         "it; sent as = the frame pktgen really sent when its headers made it grow; pps and Mb/s "
         "from pktgen (Mb/s without FCS, of the frame sent); L1 Mb/s adds FCS, preamble and gap "
         "(frame sent + 20 B); offered = sent (accepted by the driver) + errors (refused by it); "
         "loss = offered - received")
TABLE_COLUMNS = {  # column -> heading in the terminal table
    "id": "point", "label": "label", "frame": "frame", "pkt_size": "pkt_size",
    "frame_sent": "sent as",
    "clone_skb": "clone", "flows": "flows", "threads": "threads", "pps": "pps",
    "pps_spread": "spread", "mbps": "Mb/s", "l1_mbps": "L1 Mb/s", "sent": "sent",
    "received": "received", "loss_ratio": "loss", "errors": "errors", "gate": "gate",
}
L1_OVERHEAD = 20  # preamble 7 + SFD 1 + inter-frame gap 12 bytes


@dataclass
class Results:
    """Every measurement of the session, in order, and the environment they ran in."""

    environment: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)

    def add(self, row: dict) -> dict:
        self.rows.append(row)
        return row

    def find(self, label: str, point_key: tuple) -> dict | None:
        for row in reversed(self.rows):
            if row.get("label") == label and point_key_of(row) == point_key:
                return row
        return None

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def write(self, out_dir: str) -> dict[str, Path]:
        """results.csv, results.json and sweep.png in ``out_dir``; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        df = self.frame()
        paths = {"csv": out / "results.csv", "json": out / "results.json"}
        with open(paths["csv"], "w") as f:
            f.write(f"# pytest-pktgen results; {UNITS}\n")
            for key, value in self.environment.items():
                f.write(f"# {key}: {value}\n")
            df.to_csv(f, index=False)
        doc = {"version": 1, "units": UNITS, "environment": self.environment,
               "results": json.loads(df.to_json(orient="records"))}
        paths["json"].write_text(json.dumps(doc, indent=2) + "\n")
        plot = plot_sweeps(df, out / "sweep.png")
        if plot:
            paths["png"] = plot
        return paths


def point_key_of(row: Mapping) -> tuple:
    return tuple(row.get(k) for k in (*AXES, "extra"))


def row_for(test: str, name: str, point, label: str | None, rounds: list, received: list | None,
            rx_backend: str | None, device: Mapping[str, str], sink: str = "") -> dict:
    """One measurement as a row: the point, the medians over rounds, the totals; ``sink`` is
    what the sink did with the frames
    (:attr:`~pytest_pktgen.lab.topology.NetnsTopology.sink_mode`)."""
    import statistics

    pps = [r.pps for r in rounds]
    mbps = [r.bps / 1e6 for r in rounds]
    sent = sum(r.sent for r in rounds)
    offered = sum(r.offered for r in rounds)
    axes = point.axes()
    # the frame pktgen really sent: larger than the point's when its headers (IPv6, tags,
    # labels, its own 16 bytes) did not fit; then Mb/s count what was sent, not what was asked
    # (sizes that vary, imix: no single frame to name; pktgen's own bps count what it sent)
    statuses = [s for r in rounds for s in r.devices.values()]
    fixed = all(s.fixed_size for s in statuses)
    frame_sent = max((s.frame_sent for s in statuses), default=point.frame) if fixed \
        else point.frame
    extra = {k: v for k, v in axes.items() if k not in AXIS_COLUMNS}
    row = {
        "test": test, "name": name, "id": point.id, "label": label,
        **{k: axes[k] for k in AXIS_COLUMNS},
        "extra": json.dumps(extra, sort_keys=True) if extra else "",
        "rounds": len(rounds),
        "pps": float(statistics.median(pps)),
        "pps_min": float(min(pps)), "pps_max": float(max(pps)),
        "pps_spread": (max(pps) - min(pps)) / statistics.median(pps) if statistics.median(pps)
        else 0.0,
        "frame_sent": frame_sent,
        "mbps": float(statistics.median(pps)) * pkt_size_of(frame_sent) * 8 / 1e6
        if frame_sent > point.frame else float(statistics.median(mbps)),
        "l1_mbps": float(statistics.median(pps)) * (frame_sent + L1_OVERHEAD) * 8 / 1e6,
        "offered": offered, "sent": sent, "errors": offered - sent,
        "pktgen_s": sum(max(s.result.elapsed_us for s in r.devices.values()) for r in rounds) / 1e6,
        "wall_s": sum(r.wall_s for r in rounds),
        "received": None, "loss": None, "loss_ratio": None, "rx_backend": rx_backend,
        "sink": sink,
        **{f"dev_{k}": v for k, v in device.items()},
        "gate": "",
    }
    if received is not None:
        got = sum(received)
        # nothing offered: no loss ratio at all, never a perfect 0 (gates.untrue says why)
        row.update(received=got, loss=offered - got,
                   loss_ratio=(offered - got) / offered if offered else None)
    return row


# --- environment -------------------------------------------------------------------------

def environment(kernel_info=None, lab=None) -> dict:
    """What the session ran on: kernel, pktgen, CPU, VM or bare metal, software versions."""
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    hypervisor = any(line.startswith("flags") and " hypervisor" in line
                     for line in cpuinfo.splitlines())
    if lab is not None:
        machine = f"VM lab (virtme-ng, QEMU {lab.accel.upper()}, {lab.cpus} vCPUs, {lab.memory})"
    else:
        machine = "virtual machine" if hypervisor else "bare metal"
    env = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "kernel": platform.release(),
        "pktgen": getattr(kernel_info, "pktgen_version", None),
        "cpu": model, "cpus": os.cpu_count(), "machine": machine,
        "python": platform.python_version(),
        "pytest_pktgen": version("pytest-pktgen"),
        "pytest_benchmark": version("pytest-benchmark"),
    }
    return env


# --- the terminal table ------------------------------------------------------------------

def tables(rows: list[dict]) -> list[tuple[str, list[str]]]:
    """One table per test function (a sweep), as (title, lines)."""
    import pandas as pd

    out = []
    df = pd.DataFrame(rows)
    for name, group in df.groupby("name", sort=False):
        varying = [c for c in ("label", *AXES[1:])
                   if group[c].nunique(dropna=False) > 1]
        columns = ["frame", "pkt_size", *varying, "pps", "pps_spread", "mbps", "l1_mbps", "sent",
                   "errors", "received", "loss_ratio", "gate"]
        if "frame_sent" in group and (group["frame_sent"] != group["frame"]).any():
            columns.insert(1, "frame_sent")  # the frame really sent, beside the one asked
        if group["extra"].astype(bool).any():
            columns.insert(2 + len(varying), "id")
        shown = group[columns].copy()
        shown["pps"] = shown["pps"].map(lambda v: f"{v:,.0f}")
        shown["pps_spread"] = shown["pps_spread"].map(lambda v: f"{v:.1%}")
        for col in ("mbps", "l1_mbps"):
            shown[col] = shown[col].map(lambda v: f"{v:,.1f}")
        shown["loss_ratio"] = shown["loss_ratio"].map(
            lambda v: "-" if v is None or pd.isna(v) else f"{v:.3%}")
        shown["received"] = shown["received"].map(
            lambda v: "-" if v is None or pd.isna(v) else f"{int(v)}")
        shown = shown.rename(columns=TABLE_COLUMNS)
        text = shown.to_string(index=False)
        backends = sorted({b for b in group["rx_backend"].dropna()})
        sinks = sorted({s for s in group.get("sink", pd.Series(dtype=str)).dropna() if s})
        title = f"{name}: {len(group)} point(s)" + (
            f", received counted by {', '.join(backends)}" if backends else "") + (
            f", sink {', '.join(sinks)}" if sinks else "")
        out.append((title, text.splitlines()))
    return out


# --- plots -------------------------------------------------------------------------------

def sweep_series(df) -> list[tuple[tuple, object]]:
    """The lines of the sweep plot: per test and setting (every axis but the frame), its rows
    by frame size, where it has at least two frame sizes (a line of one point says nothing)."""
    if df.empty:
        return []
    series_cols = ["name", "label", *AXES[1:], "extra"]
    return [(key, group.sort_values("frame"))
            for key, group in df.groupby(series_cols, sort=False, dropna=False)
            if group["frame"].nunique() >= 2]


def plot_sweeps(df, path: Path) -> Path | None:
    """pps and Mb/s against frame size, a line per test and setting; None if nothing sweeps
    frame sizes (tests at one frame size each, however many: nothing to draw)."""
    series = sweep_series(df)
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_pps, ax_mbps) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, group in series:
        name, label, clone, flows, threads, extra = key
        legend = " ".join(str(p) for p in (
            name, label if isinstance(label, str) else "", f"clone_skb {clone}",
            f"{flows} flows" if flows else "", f"{threads} thr" if threads > 1 else "",
            extra) if p)
        ax_pps.plot(group["frame"], group["pps"], marker="o", label=legend)
        ax_mbps.plot(group["frame"], group["mbps"], marker="o", label=legend)
    for ax, ylabel in ((ax_pps, "packets per second (pktgen)"),
                       (ax_mbps, "Mb/s (pktgen, without FCS)")):
        ax.set_xlabel("frame size on the wire, bytes (with FCS)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    ax_pps.legend(fontsize="small")
    fig.suptitle("pktgen sweep")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
