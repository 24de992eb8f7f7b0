"""Reports from rows built of real pktgen outputs (tests/data/captured/)."""

from __future__ import annotations

from pathlib import Path

from pytest_pktgen.measurement.point import AXES, Point
from pytest_pktgen.measurement.report import (
    frame_of,
    legend_of,
    plot_sweeps,
    sweep_series,
    tables,
)
from pytest_pktgen.measurement.row import Row
from pytest_pktgen.pktgen.parse import parse_device
from pytest_pktgen.run.runner import RunResult

CAPTURED = Path(__file__).parent.parent / "data" / "captured"


def _row(test: str, frame: int) -> dict:
    status = parse_device((CAPTURED / "device-ipv4-crossover.txt").read_text())
    run = RunResult(devices={"d": status}, configs={}, wall_s=1.0, stopped_by_us=False)
    return Row.of(test, test, Point(frame=frame), None, [run])


def test_tests_at_one_frame_size_each_draw_no_plot(tmp_path: Path):
    """Two tests at 64 and 1500 B: two frame sizes in the session, but no line of two points
    (this drew an empty figure once, and cost a TCG session 12 s)."""
    df = frame_of([_row("a", 64), _row("b", 1500)])
    assert sweep_series(df) == []
    assert plot_sweeps(df, tmp_path / "sweep.png") is None
    assert not (tmp_path / "sweep.png").exists()


def test_a_sweep_draws_a_line_per_test_and_setting(tmp_path: Path):
    df = frame_of([_row("a", 64), _row("b", 64), _row("a", 1500), _row("a", 512)])
    (key, rows), = sweep_series(df)
    assert key[0] == "a" and list(rows["frame"]) == [64, 512, 1500]
    assert legend_of(key) == "a"
    assert plot_sweeps(df, tmp_path / "sweep.png") == tmp_path / "sweep.png"
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_a_row_derives_errors_loss_and_its_columns_from_what_was_counted():
    status = parse_device((CAPTURED / "device-ipv4-crossover.txt").read_text())
    run = RunResult(devices={"d": status}, configs={}, wall_s=1.0, stopped_by_us=False)
    point = Point(frame=512, clone_skb=0, extra=(("ratep", 1000),), swept=("frame", "ratep"))
    row = Row.of("t.py::test_x[512B-ratep1000]", "test_x", point, "stock", [run, run],
                 received=[run.offered, run.offered - 7], rx_backend="kmod",
                 device={"name": "eth1", "driver": "virtio_net"}, sink="kmod-drop")
    assert (row.offered, row.sent, row.errors) == (2 * run.offered, 2 * run.sent,
                                                   2 * run.errors)
    assert (row.loss, row.loss_ratio) == (7, 7 / row.offered)
    assert row.key == "t.py::test_x[512B-ratep1000]#stock"
    assert [(r["pps"], r["offered"], r["received"]) for r in row.per_round] == [
        (float(run.pps), run.offered, run.offered), (float(run.pps), run.offered, run.offered - 7)]
    assert row.per_round[1]["loss_ratio"] == 7 / run.offered
    assert row.per_round[0]["mbps"] == run.bps / 1e6 and row.per_round[0]["lat_p99_us"] is None
    assert row.point_key == (512, 0, 0, 1, '{"ratep": 1000}')
    columns = row.as_dict()
    assert list(columns)[:10] == ["test", "name", "id", "label", "frame", "pkt_size",
                                  "clone_skb", "flows", "threads", "extra"]
    assert columns["id"] == "512B-ratep1000" and columns["pkt_size"] == 508
    assert (columns["dev_driver"], columns["sink"], row["loss"]) == ("virtio_net", "kmod-drop", 7)
    assert "ratio" not in columns and "baseline" not in columns  # no gate asked for them
    row.ratio, row.baseline = 0.5, "ok"
    assert (row["ratio"], row["baseline"]) == (0.5, "ok")
    unseen = Row.of("t", "t", point, None, [run])
    assert unseen.loss is None and unseen.loss_ratio is None  # not counted: never 0 %


def test_an_imix_row_counts_its_sizes_and_averages_them():
    """pktgen's imix_size_counts (a real run's: 64,7 594,4 1500,1 as pkt_size) become the
    row's sizes with the FCS, its average frame and the L1 rate at that average."""
    status = parse_device((CAPTURED / "device-dummy-mpls-imix.txt").read_text())
    counts = status.imix_counts
    assert set(counts) == {64, 594, 1500} and sum(counts.values()) == 1000
    run = RunResult(devices={"d": status}, configs={}, wall_s=1.0, stopped_by_us=False)
    point = Point(extra=(("imix", ((68, 7), (598, 4), (1504, 1))),), swept=("imix",))
    row = Row.of("t.py::test_i[imix]", "test_i", point, None, [run, run])
    assert row.sizes == {size + 4: 2 * n for size, n in counts.items()}
    average = sum((size + 4) * n for size, n in counts.items()) / 1000
    assert row.avg_frame == average
    assert row.l1_mbps == row.pps * (average + 20) * 8 / 1e6
    assert row["sizes"] == " ".join(f"{size + 4}:{2 * n}" for size, n in sorted(counts.items()))
    assert row.as_dict()["id"] == "imix68x7+598x4+1504x1"
    (_title, lines), = tables([row])
    assert "avg frame" in lines[0] and f"{average:,.1f}" in lines[1]
    fixed = _row("a", 64)  # no IMIX: no sizes, the average is the frame sent
    assert fixed.sizes == {} and fixed.avg_frame == fixed.frame_sent and fixed["sizes"] == ""


def test_a_lines_legend_names_the_settings_that_set_it_apart():
    point = Point(frame=64, clone_skb=100, threads=2, extra=(("ratep", 5),))
    row = Row.of("t", "test_x", point, "stock", [RunResult(
        devices={"d": parse_device((CAPTURED / "device-ipv4-crossover.txt").read_text())},
        configs={}, wall_s=1.0, stopped_by_us=False)])
    key = (row.name, row.label, *(point.axes()[a] for a in AXES[1:]), row.extra)
    assert legend_of(key) == 'test_x stock clone_skb 100 threads 2 {"ratep": 5}'
