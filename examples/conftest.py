"""Collects each sweep point's measurement and prints them as one table at the end."""

from __future__ import annotations

import pytest

ROWS: list[dict] = []


@pytest.fixture
def record_point():
    """Call with a row (dict) to add a line to the end-of-session sweep table."""
    return ROWS.append


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    columns = list(ROWS[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in ROWS)) for c in columns}
    terminalreporter.section("pktgen packet-size sweep")
    terminalreporter.write_line("  ".join(c.rjust(widths[c]) for c in columns))
    for row in ROWS:
        terminalreporter.write_line("  ".join(str(row[c]).rjust(widths[c]) for c in columns))
    terminalreporter.write_line("frame = bytes on the wire with the 4-byte FCS; pkt_size = "
                                "frame - 4, as pktgen counts it; Mb/s from pktgen (no FCS)")
