"""The measurement bench/regression.py compares between kernels (and bisects by): pktgen
unpaced on a dummy, 64 B frames, so each packet's time is the kernel's transmit path and
nothing else (a dummy frees the skb in pktgen's own thread)."""

import pytest


@pytest.mark.pktgen(frame=64, count=100_000)
def test_dummy_64(dummy, pktgen_bench):
    pktgen_bench(dummy)
