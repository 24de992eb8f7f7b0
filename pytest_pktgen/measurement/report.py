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
from dataclasses import dataclass, field
from pathlib import Path

from ..host import cpu
from . import saved
from .compare import Comparison, exit_code
from .point import AXES, Point
from .row import Row
from .search import SearchResult

UNITS = ("frame = bytes on the wire with the 4-byte FCS; pkt_size = frame - 4, as pktgen counts "
         "it; sent as = the frame pktgen really sent when its headers made it grow; pps and Mb/s "
         "from pktgen (Mb/s without FCS, of the frame sent); L1 Mb/s adds FCS, preamble and gap "
         "(frame sent + 20 B; of an IMIX, its average frame sent: avg_frame, from the counts "
         "of each size in sizes); offered = sent (accepted by the driver) + errors (refused by "
         "it); loss = offered - received; latency (lat_*_us, pgrx) one-way in µs from pktgen's "
         "timestamp, of one sequence number in lat_every (1: every packet), each sample "
         "including up to pacing_wait_us of pktgen's own wait when paced; "
         "sink = where the sink dropped pktgen's frames: tc-drop at its tc ingress, kmod-drop "
         "at its netdev ingress by pgrx (kmod-drop-prerouting: after the IP layer, slower), "
         "stack: up the sink's stack")
TABLE_COLUMNS = {  # column -> heading in the terminal table
    "id": "point", "label": "label", "frame": "frame", "pkt_size": "pkt_size",
    "frame_sent": "sent as", "avg_frame": "avg frame",
    "clone_skb": "clone", "flows": "flows", "threads": "threads", "pps": "pps",
    "pps_spread": "spread", "mbps": "Mb/s", "l1_mbps": "L1 Mb/s", "sent": "sent",
    "received": "received", "loss_ratio": "loss", "errors": "errors", "gate": "gate",
    "lat_p50_us": "p50 µs", "lat_p99_us": "p99 µs", "lat_max_us": "max µs",
}


@dataclass
class Results:
    """Every measurement of the session, in order, and the environment they ran in."""

    environment: dict = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    searches: list[SearchResult] = field(default_factory=list)  # throughput searches
    # against a baseline (baseline_path): every metric's comparison at every point
    comparisons: list[Comparison] = field(default_factory=list)
    baseline_path: str = ""

    def __bool__(self) -> bool:
        return bool(self.rows or self.searches)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def find_search(self, label: str, point_key: tuple) -> SearchResult | None:
        """The latest throughput search labelled ``label`` at the sweep point ``point_key``."""
        return _latest(self.searches, label, point_key)

    def find(self, label: str, point_key: tuple) -> Row | None:
        """The latest row labelled ``label`` at the sweep point ``point_key``."""
        return _latest(self.rows, label, point_key)

    def frame(self):
        return frame_of(self.rows)

    def document(self, df=None, searches=None) -> dict:
        """The session as results.json holds it (a baseline is the same document): the
        form of ``results.schema.json``, version :data:`~.saved.VERSION`; ``df`` and
        ``searches``: the rows' and searches' frames, if made already."""
        doc = {"version": saved.VERSION, "units": UNITS, "environment": self.environment,
               "results": []}
        if self.rows:
            df = self.frame() if df is None else df
            doc["results"] = json.loads(df.to_json(orient="records", double_precision=15))
            for doc_row, row in zip(doc["results"], self.rows, strict=True):
                doc_row["drops"] = row.drops  # every drop counter that moved, by place
                doc_row["per_round"] = row.per_round  # what a comparison's statistics need
                if row.latency is not None and row.latency.samples:
                    # every sample, in HdrHistogram's portable form (and pgrx's buckets)
                    doc_row["latency_hdr"] = row.latency.encoded()
        if self.searches:
            searches = searches_frame(self.searches) if searches is None else searches
            rows = json.loads(searches.to_json(orient="records", double_precision=15))
            doc["searches"] = [{**row, **found.detail()}
                               for row, found in zip(rows, self.searches, strict=True)]
        if self.comparisons:
            doc["baseline"] = self.baseline_path
            doc["comparisons"] = [c.as_dict() for c in self.comparisons]
        return doc

    def save(self, path: str | Path, doc: dict | None = None) -> Path:
        """The session's document (:meth:`document`) written to ``path``: results.json, or
        a baseline."""
        return write_json(Path(path), doc or self.document())

    def write(self, out_dir: str, plots: bool = True, baseline: str | None = None
              ) -> dict[str, Path]:
        """results.csv, results.json and sweep.png in ``out_dir`` for the measurements;
        searches.csv and a search-*.png per throughput search (results.json holds them too,
        each with its goals in MLRsearch's form and its trials); against a baseline,
        compare.png (the forest plot of its comparisons); no PNGs unless ``plots``; the same
        document as results.json saved as ``baseline`` too, if given; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        df = self.frame() if self.rows else None
        searches = searches_frame(self.searches) if self.searches else None
        if self.rows:
            paths["csv"] = self._csv(out / "results.csv", df)
        if self.searches:
            paths["searches csv"] = self._csv(out / "searches.csv", searches)
        doc = self.document(df, searches)
        # the tables first, then the plots
        paths["json"] = self.save(out / "results.json", doc)
        if baseline:
            paths["baseline"] = self.save(baseline, doc)
        if self.rows and plots:
            plot = plot_sweeps(df, out / "sweep.png")
            if plot:
                paths["png"] = plot
        for n, found in enumerate(self.searches if plots else ()):
            paths[f"search png {n + 1}"] = plot_search(found, out / search_png(found, n))
        timed = [row for row in self.rows if row.latency is not None and row.latency.samples]
        for name in dict.fromkeys(row.name for row in timed) if plots else ():
            paths[f"latency png {name}"] = plot_latency(
                [row for row in timed if row.name == name], out / f"latency-{_file_part(name)}.png")
        if self.comparisons and plots:
            paths["forest png"] = plot_forest(self.comparisons, out / "compare.png",
                                              f"against the baseline {self.baseline_path}")
        return paths

    def _csv(self, path: Path, df) -> Path:
        with open(path, "w") as f:
            f.write(f"# pytest-pktgen results; {UNITS}\n")
            for key, value in self.environment.items():
                f.write(f"# {key}: {value}\n")
            df.to_csv(f, index=False)
        return path


def write_json(path: Path, doc: dict) -> Path:
    """A document (results.json's form) written to ``path``, its directory made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def searches_frame(searches: list[SearchResult]):
    """The throughput searches as a pandas DataFrame of their report columns."""
    import pandas as pd

    return pd.DataFrame([found.as_dict() for found in searches])


def _file_part(text: str) -> str:
    """``text`` as a part of a file name (letters, digits, - and _)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def search_png(found: SearchResult, n: int) -> str:
    """A search's plot's file name: its test, label and frame, numbered in the session."""
    name = _file_part(found.name or "search")
    label = f"-{found.label}" if found.label else ""
    return f"search-{n + 1}-{name}{label}-{found.frame}B.png"


# --- environment -------------------------------------------------------------------------

def environment(kernel_info=None, lab=None, hosts: dict | None = None) -> dict:
    """What the session ran on: kernel, pktgen, CPU, VM or bare metal, software versions; and
    each other host's (``hosts``: name -> its agent's facts)."""
    from importlib.metadata import version

    cpuinfo = cpu.cpuinfo()
    model = cpu.model(cpuinfo)
    hypervisor = any(line.startswith("flags") and " hypervisor" in line
                     for line in cpuinfo.splitlines())
    if lab is not None:
        machine = (f"VM lab (virtme-ng, QEMU {lab.accel.upper()}, {lab.cpus} vCPUs, {lab.memory}"
                   + (", instruction clock)" if lab.clock == "instructions" else ")"))
    else:
        machine = "virtual machine" if hypervisor else "bare metal"
    env = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "kernel": platform.release(),
        "pktgen": getattr(kernel_info, "pktgen_version", None),
        "cpu": model, "cpus": os.cpu_count(), "machine": machine,
        # what a second in the figures is: the host's time, or a billion guest instructions
        "clock": lab.clock if lab is not None else "host",
        "python": platform.python_version(),
        "pytest_pktgen": version("pytest-pktgen"),
        "pytest_benchmark": version("pytest-benchmark"),
    }
    if hosts:
        env["hosts"] = {name: {key: facts.get(key) for key in
                               ("hostname", "kernel", "cpu", "cpus", "python")}
                        for name, facts in sorted(hosts.items())}
    return env


# --- the terminal table ------------------------------------------------------------------

def _latest(items, label: str, point_key: tuple):
    """The last of ``items`` (rows or searches) labelled ``label`` at ``point_key``, or None."""
    return next((item for item in reversed(items)
                 if item.label == label and item.point_key == point_key), None)


LATENCY_SHOWN = ("lat_p50_us", "lat_p99_us", "lat_max_us")  # in the terminal's table


def frame_of(rows: list[Row]):
    """The rows as a pandas DataFrame of their report columns."""
    import pandas as pd

    return pd.DataFrame([row.as_dict() for row in rows])


def _count(value) -> int:
    """A count column's value, 0 where a row has none (NaN in a frame of several rows)."""
    return 0 if value is None or value != value else int(value)


def tables(rows: list[Row]) -> list[tuple[str, list[str]]]:
    """One table per test function (a sweep), as (title, lines)."""
    import pandas as pd

    out = []
    df = frame_of(rows)
    for name, group in df.groupby("name", sort=False):
        varying = [c for c in ("label", *AXES[1:])
                   if group[c].nunique(dropna=False) > 1]
        columns = ["frame", "pkt_size", *varying, "pps", "pps_spread", "mbps", "l1_mbps", "sent",
                   "errors", "received", "loss_ratio", "gate"]
        if "frame_sent" in group and (group["frame_sent"] != group["frame"]).any():
            columns.insert(1, "frame_sent")  # the frame really sent, beside the one asked
        if "sizes" in group and group["sizes"].astype(bool).any():
            columns.insert(1, "avg_frame")  # an IMIX: the average of the frames it sent
        if group["extra"].astype(bool).any():
            columns.insert(2 + len(varying), "id")
        latency = [c for c in LATENCY_SHOWN if c in group and group[c].notna().any()]
        columns[-1:-1] = latency  # p50/p99/max µs where pgrx measured them, before the gate
        shown = group[columns].copy()
        for col in latency:
            shown[col] = shown[col].map(lambda v: "-" if pd.isna(v) else f"{v:,.0f}")
        shown["pps"] = shown["pps"].map(lambda v: f"{v:,.0f}")
        if "avg_frame" in shown:
            shown["avg_frame"] = shown["avg_frame"].map(lambda v: f"{v:,.1f}")
        shown["pps_spread"] = shown["pps_spread"].map(lambda v: f"{v:.1%}")
        for col in ("mbps", "l1_mbps"):
            shown[col] = shown[col].map(lambda v: f"{v:,.1f}")
        shown["loss_ratio"] = shown["loss_ratio"].map(
            lambda v: "-" if v is None or pd.isna(v) else f"{v:.3%}")
        shown["received"] = shown["received"].map(
            lambda v: "-" if v is None or pd.isna(v) else f"{int(v)}")
        shown = shown.rename(columns=TABLE_COLUMNS)
        text = shown.to_string(index=False)
        for _, r in group.iterrows():  # where the loss happened, a line per point that lost
            what = " ".join(str(v) for v in (r["id"] or f"{r['frame']}B", r["label"])
                            if v and not pd.isna(v))
            if r.get("where"):
                text += f"\n  {what}: {r['where']}"
            # which device lost, duplicated or reordered (pgrx's streams), where one did
            if any(_count(r.get(c)) for c in ("stream_lost", "stream_duplicates",
                                               "stream_late", "streams_untracked")):
                text += f"\n  {what} per device: {r['streams']}"
            text += _clock_line(what, r)
        backends = sorted({b for b in group["rx_backend"].dropna()})
        sinks = sorted({s for s in group.get("sink", pd.Series(dtype=str)).dropna() if s})
        title = f"{name}: {len(group)} point(s)" + (
            f", received counted by {', '.join(backends)}" if backends else "") + (
            f", sink {', '.join(sinks)}" if sinks else "") + _sample_part(group)
        out.append((title, text.splitlines()))
    return out


def search_tables(searches: list[SearchResult]) -> list[tuple[str, list[str]]]:
    """One table per test function of its throughput searches (RFC 2544's table of
    throughput per frame size), as (title, lines)."""
    import pandas as pd

    out = []
    df = searches_frame(searches)
    for name, group in df.groupby("name", sort=False):
        pdr = group["pdr_loss_ratio"].dropna()
        pdr_head = f"PDR {pdr.iloc[0]:.1%}" if len(pdr) and pdr.nunique() == 1 else "PDR"

        def num(v, fmt):
            return "-" if v is None or pd.isna(v) else format(v, fmt)

        shown = pd.DataFrame({
            "label": group["label"].fillna(""), "frame": group["frame"],
            "pkt_size": group["pkt_size"],
            "NDR pps": group["ndr_pps"].map(lambda v: num(v, ",.0f")),
            "NDR L1 Mb/s": group["ndr_l1_mbps"].map(lambda v: num(v, ",.1f")),
            f"{pdr_head} pps": group["pdr_pps"].map(lambda v: num(v, ",.0f")),
            f"{pdr_head} L1 Mb/s": group["pdr_l1_mbps"].map(lambda v: num(v, ",.1f")),
            "irregular": group["irregular"].map(lambda v: "yes" if v else ""),
            "trials": group["trial_count"], "time s": group["search_s"].map(lambda v: f"{v:.0f}"),
        })
        if not group["label"].astype(bool).any():
            shown = shown.drop(columns="label")
        if group["ndr_lat_p50_us"].notna().any():  # RFC 2544's latency test, at the NDR
            for k in ("p50", "p99"):
                shown.insert(len(shown.columns) - 2, f"{k} µs at NDR",
                             group[f"ndr_lat_{k}_us"].map(lambda v: num(v, ",.0f")))
        backends = sorted({b for b in group["rx_backend"].dropna()})
        sinks = sorted({s for s in group["sink"].dropna() if s})
        title = f"{name}: {len(group)} throughput search(es)" + (
            f", received counted by {', '.join(backends)}" if backends else "") + (
            f", sink {', '.join(sinks)}" if sinks else "")
        text = shown.to_string(index=False)
        for _, r in group.iterrows():
            what = " ".join(str(v) for v in (f"{r['frame']}B", r["label"])
                            if v and not pd.isna(v))
            text += _clock_line(f"{what} NDR", r)
        out.append((title, text.splitlines()))
    return out


def _sample_part(group) -> str:
    """The latency's sample, for a table's title: of every packet, or one in N."""
    if "lat_every" not in group:
        return ""
    every = sorted({int(v) for v in group["lat_every"].dropna()})
    return ", latency of " + " or ".join("every packet" if n == 1 else f"1 packet in {n}"
                                        for n in every) if every else ""


def _clock_line(what: str, r) -> str:
    """A latency stamped on one machine and read on another: their clocks' offset with it
    (a line under the table; nothing for latency measured on one machine)."""
    import pandas as pd

    if pd.isna(r.get("lat_clock_offset_us", float("nan"))):
        return ""
    return (f"\n  {what} latency across hosts: the sink's clock minus the generator's "
            f"{r['lat_clock_offset_us']:+,.0f} us +- {r['lat_clock_uncertainty_us']:,.0f} us, "
            "in every sample")


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


def legend_of(key: tuple) -> str:
    """A line's name: the test, its label, the axes not at their defaults, the extra
    parameters (the key of :func:`sweep_series`)."""
    name, label, *axes, extra = key
    default = Point()
    return " ".join(str(p) for p in (
        name, label if isinstance(label, str) else "",
        *(f"{axis} {value}" for axis, value in zip(AXES[1:], axes, strict=True)
          if value != getattr(default, axis)),
        extra) if p)


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
        legend = legend_of(key)
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


def plot_latency(rows: list[Row], path: Path) -> Path:
    """One test's latency distributions, a line per point (frame, label, axes): each packet's
    latency against the share of packets at or below it (a CDF from every sample), log µs,
    the percentiles the reports give marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for n, row in enumerate(rows):
        lows = sorted(row.latency.buckets)
        total, seen, xs, ys = row.latency.samples, 0, [], []
        for low in lows:
            seen += row.latency.buckets[low]
            xs.append(max(low, 1))
            ys.append(seen / total)
        what = ", ".join(v for v in (row.point.id or f"{row.frame}B", row.label) if v)
        wait = f", pacing wait {row.pacing_wait_us:,.0f} µs" if row.pacing_wait_us else ""
        if row.latency.every > 1:
            wait += f", 1 packet in {row.latency.every}"
        ax.step(xs, ys, where="post", color=f"C{n % 10}",
                label=f"{what}: p50 {row.lat_p50_us:,.0f}, p99 {row.lat_p99_us:,.0f} µs{wait}")
    for share in (0.5, 0.9, 0.99):
        ax.axhline(share, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("one-way latency, µs (pgrx, from pktgen's timestamp)")
    ax.set_ylabel("share of packets at or below")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    ax.set_title(f"{rows[0].name}: latency of the packets sampled (dotted: p50, p90, p99)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_search(found: SearchResult, path: Path) -> Path:
    """A search's trials: loss ratio against intended load (log scales), each goal's loss
    ratio as a line and its relevant bounds marked, the NDR and PDR in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    loads = [t.intended_load for t in found.trials]
    floor = 1e-6  # a lossless trial, drawn at the bottom of the log scale
    ax.scatter(loads, [max(t.loss_ratio, floor) for t in found.trials], s=14, color="black",
               label=f"{len(found.trials)} trials")
    for n, result in enumerate(found.goals):
        color = f"C{n}"
        ratio = result.goal.loss_ratio
        ax.axhline(max(ratio, floor), color=color, lw=0.8, ls=":")
        for bound, style in ((result.lower_pps, "-"), (result.upper_pps, "--")):
            if bound is not None:
                ax.axvline(bound, color=color, lw=1, ls=style)
        what = "NDR" if ratio == 0.0 else f"PDR {ratio:.1%}"
        value = "-" if result.throughput_pps is None else f"{result.throughput_pps:,.0f} pps"
        ax.plot([], [], color=color, label=f"{what}: {value} (lower -, upper --)"
                + (", irregular" if result.irregular else ""))
    # the limits before the log scales: no autoscaling on trials all at one load or one loss
    # ratio (matplotlib warns of a singular transformation)
    xs = loads + [b for r in found.goals for b in (r.lower_pps, r.upper_pps) if b]
    ax.set_xlim(min(xs) / 1.25, max(xs) * 1.25)
    ax.set_ylim(floor / 2, 1.5)  # loss ratios from none to all
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("intended load, packets per second")
    ax.set_ylabel(f"trial loss ratio (lossless at {floor:g})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{found.name or 'search'}{' ' + found.label if found.label else ''}: "
                 f"{found.frame} B frames, max load {found.max_load:,.0f} pps "
                 f"({found.max_load_from})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --- comparisons (a baseline, two saved sessions, two kernels) --------------------------

RATIO_TICKS = (0.25, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0)
VERDICT_COLOURS = {"regression": "tab:red", "undecided": "tab:orange",
                   "no change": "tab:grey", "improvement": "tab:green"}


def comparison_table(comparisons: list[Comparison]) -> list[str]:
    """The comparisons as a table, a line each: the point, the metric, the estimate (a ratio,
    after / before; a loss ratio's difference in shares) and its interval, the threshold,
    the verdict, the rounds on each side and what would settle an undecided one."""
    head = ("point", "metric", "after/before", "interval", "threshold", "verdict",
            "rounds b+a")
    lines = []
    for c in comparisons:
        m = c.metric
        interval = "-" if c.low is None else f"{m.show(c.low)}..{m.show(c.high)}"
        threshold = f"+-{c.threshold:.2%}" if m.absolute else f"+-{c.threshold:.1%}"
        rounds = "bounds" if c.method == "search bounds" else f"{len(c.before)}+{len(c.after)}"
        verdict = c.verdict + (f": {c.settle()}" if c.verdict == "undecided" else "") + (
            f" ({c.note})" if c.note else "")
        lines.append((c.key, m.name, m.show(c.estimate), interval, threshold, verdict, rounds))
    order = (*range(5), 6, 5)  # the verdict last: it runs long
    widths = [max(len(row[i]) for row in (head, *lines)) for i in order]
    return ["  ".join(row[i].ljust(w) for i, w in zip(order, widths, strict=True)).rstrip()
            for row in (head, *lines)]


def comparison_summary(comparisons: list[Comparison]) -> str:
    """How many of each verdict, and what it means for a gate."""
    if not comparisons:
        return "nothing to compare"
    counts = {v: sum(c.verdict == v for c in comparisons) for v in VERDICT_COLOURS}
    said = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    levels = sorted({c.confidence for c in comparisons if c.method != "search bounds"})
    rate = (f"; by rounds, a change smaller than its threshold is called a regression in at "
            f"most {(1 - levels[0]) / 2:.1%} of comparisons ({levels[0]:.0%} intervals)"
            if levels else "")
    plural = "s" if len(comparisons) != 1 else ""
    return f"{len(comparisons)} comparison{plural}: {said}{rate}"


NOTHING_COMPARED = 4  # the exit code of a comparison with no point measured on both sides


def judge(before: saved.Saved, after: saved.Saved, thresholds, confidence: float, *,
          title: str, echo, plot: Path | None = None) -> tuple[list[Comparison], int]:
    """``after`` compared with ``before`` and said through ``echo``: the title, the table, the
    points only one of them has, the summary (and a forest plot at ``plot``). (The comparisons,
    an exit code: :func:`~.compare.exit_code`'s 0, 1 or 2, or :data:`NOTHING_COMPARED` where
    no point was measured on both or the two cannot be compared, said why.)"""
    try:
        found, only = saved.compare_sessions(before, after, thresholds, confidence)
    except saved.SavedError as err:
        echo(f"{title}: no comparison: {err}")
        return [], NOTHING_COMPARED
    echo(f"{title}:")
    for line in comparison_table(found) if found else ["no point measured on both"]:
        echo(line)
    for line in only:
        echo(line)
    echo(comparison_summary(found))
    if found and plot is not None:
        echo(f"forest plot: {plot_forest(found, plot, title).resolve()}")
    return found, exit_code(found) if found else NOTHING_COMPARED


def plot_forest(comparisons: list[Comparison], path: Path, title: str) -> Path:
    """A forest plot: a row per point and metric, its estimate and interval, the band of no
    change (the threshold) shaded, coloured by verdict; ratios on a log scale, a loss ratio's
    difference in a panel of its own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    panels = [[c for c in comparisons if not c.metric.absolute],
              [c for c in comparisons if c.metric.absolute]]
    panels = [p for p in panels if p]
    height = max(2.5, 0.35 * max(len(p) for p in panels) + 1.5)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), height), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        absolute = panel[0].metric.absolute
        finite = [v for c in panel for v in (c.low, c.high, c.estimate, *c.band)
                  if v is not None and 0 < abs(v) < float("inf")]
        edge_low = min(finite) if finite else 0.5
        edge_high = max(finite) if finite else 2.0
        for y, c in enumerate(reversed(panel)):
            lo_band, hi_band = c.band
            ax.fill_betweenx([y - 0.4, y + 0.4], lo_band, hi_band, color="tab:blue",
                             alpha=0.12, lw=0)
            colour = VERDICT_COLOURS[c.verdict]
            if c.low is not None:
                high = c.high if c.high < float("inf") else edge_high
                ax.plot([c.low, high], [y, y], color=colour, lw=2)
            ax.plot([c.estimate], [y], "o", color=colour)
        ax.axvline(0.0 if absolute else 1.0, color="black", lw=0.8)
        ax.set_yticks(range(len(panel)))
        ax.set_yticklabels([f"{c.key.rpartition('::')[2]} {c.metric.name}"
                            for c in reversed(panel)], fontsize="small")
        if absolute:
            ax.xaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0))
            ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
            ax.set_xlabel("loss ratio after - before (share of frames; shaded: +-threshold)")
        else:
            ax.set_xscale("log")
            ax.set_xlim(edge_low / 1.05, edge_high * 1.05)
            shown = [t for t in RATIO_TICKS if edge_low / 1.05 <= t <= edge_high * 1.05]
            ax.xaxis.set_major_locator(ticker.FixedLocator(shown))
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel("after / before (geometric means; shaded: +-threshold)")
        ax.grid(True, axis="x", alpha=0.3)
    handles = [axes[0][0].plot([], [], "o-", color=colour, label=verdict)[0]
               for verdict, colour in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize="small")
    levels = sorted({c.confidence for c in comparisons if c.method != "search bounds"})
    fig.suptitle(f"{title}: {levels[0]:.0%} intervals" if levels else title, fontsize="medium")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
