"""Reports from rows built of real pktgen outputs (tests/data/captured/)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pytest_pktgen.measurement.point import Point
from pytest_pktgen.measurement.report import plot_sweeps, row_for, sweep_series
from pytest_pktgen.pktgen.parse import parse_device
from pytest_pktgen.run.runner import RunResult

CAPTURED = Path(__file__).parent.parent / "data" / "captured"


def _row(test: str, frame: int) -> dict:
    status = parse_device((CAPTURED / "device-ipv4-crossover.txt").read_text())
    run = RunResult(devices={"d": status}, configs={}, wall_s=1.0, stopped_by_us=False)
    return row_for(test, test, Point(frame=frame), None, [run], None, None, {})


def test_tests_at_one_frame_size_each_draw_no_plot(tmp_path: Path):
    """Two tests at 64 and 1500 B: two frame sizes in the session, but no line of two points
    (this drew an empty figure once, and cost a TCG session 12 s)."""
    df = pd.DataFrame([_row("a", 64), _row("b", 1500)])
    assert sweep_series(df) == []
    assert plot_sweeps(df, tmp_path / "sweep.png") is None
    assert not (tmp_path / "sweep.png").exists()


def test_a_sweep_draws_a_line_per_test_and_setting(tmp_path: Path):
    df = pd.DataFrame([_row("a", 64), _row("b", 64), _row("a", 1500), _row("a", 512)])
    (key, rows), = sweep_series(df)
    assert key[0] == "a" and list(rows["frame"]) == [64, 512, 1500]
    assert plot_sweeps(df, tmp_path / "sweep.png") == tmp_path / "sweep.png"
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
