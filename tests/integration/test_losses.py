"""Where the loss happened, on a loss whose place is known: the CPUs' receive backlog cut to a
few frames (net.core.netdev_max_backlog), so a veth's frames die there, in the backlog, and
nowhere else. The row's drop counters must say so, to the frame."""

from __future__ import annotations

import pytest

from pytest_pktgen.host import netdev

pytestmark = pytest.mark.integration

BACKLOG = 8  # frames a CPU's backlog holds (default 1000): full at once at pktgen's rate


@pytest.mark.pktgen(frame=64, count=50_000, rounds=1, rx="kmod")
def test_a_backlog_too_small_is_named_as_where_the_frames_died(veth, pktgen_bench):
    old = netdev.sysctl("net/core/netdev_max_backlog", BACKLOG)
    try:
        row = pktgen_bench(veth).row
    finally:
        netdev.sysctl("net/core/netdev_max_backlog", old)
    print(row.where, row.drops)
    assert row.loss > 0, "the small backlog dropped nothing: no loss to place"
    assert row.errors == 0  # a veth accepts what it then cannot deliver
    # the backlog counted every lost frame, and the veth its own tx drop of each
    assert row.drops["softnet_dropped"] == row.loss
    assert row.drops["tx tx_dropped"] == row.loss
    assert row.where.startswith(f"lost {row.loss:,}: ")
    assert f"softnet_dropped +{row.loss:,}" in row.where
    assert not [k for k in row.drops if k.startswith("sink ")]  # nothing died at the sink
