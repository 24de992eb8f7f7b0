"""Forwarding (the paper's Figure 6): pktgen -> router namespace -> sink, against the same
frames over a plain veth. The relative gate fails the forwarding point if the router delivers
less than a fifth of what the veth does at the same frame size: a ratio holds on a noisy CI
machine or VM where absolute pps mean little.
"""

from __future__ import annotations

import pytest


@pytest.mark.pktgen_sweep(frame=[64, 1500])
def test_veth_reference(veth, pktgen_bench):
    measured = pktgen_bench(veth, label="veth")
    assert measured.received == measured.sent  # a veth loses nothing


@pytest.mark.pktgen_sweep(frame=[64, 1500])
@pytest.mark.pktgen_gate(min_ratio=0.2, relative_to="veth")
def test_forwarding(forwarding, pktgen_bench):
    measured = pktgen_bench(forwarding)
    assert 0 < measured.received <= measured.sent
