"""The A/A of bench/regression.py: the lab's stock kernel against itself, a veth sweep of the
paper's seven sizes counted and timed by pgrx, so that each point gives four comparisons (pps,
loss, p50, p99): 28 in all, none of which may be a regression beyond chance."""

import pytest


@pytest.mark.pktgen_sweep(frame=[64, 128, 256, 512, 1024, 1280, 1500])
@pytest.mark.pktgen(count=20_000)
def test_veth_sweep(veth, pktgen_bench):
    pktgen_bench(veth)
