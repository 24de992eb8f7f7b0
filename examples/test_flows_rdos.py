"""The paper's flow and route-DoS setups (pktgen.conf-1-1-flows, -rdos) as measurements.

flows: N flows, N UDP source ports taken in turn (one packet each), as a NIC spreading flows
over its queues or a router with per-flow state sees real traffic. rdos: a random destination
from a /15 per packet, the route-cache DoS of the paper's Section 7.
"""

from __future__ import annotations

import pytest


@pytest.mark.pktgen(frame=64)
@pytest.mark.pktgen_sweep(flows=[0, 1024, 8192])
def test_flows(pktgen_dut, pktgen_bench, pktgen_settings):
    measured = pktgen_bench(pktgen_dut)
    assert measured.sent == pktgen_settings.count * pktgen_settings.rounds
    assert 0 < measured.received <= measured.sent


@pytest.mark.pktgen(frame=64, dst_min="198.18.0.0", dst_max="198.19.255.255",
                    flags=["IPDST_RND"])
def test_route_dos(pktgen_dut, pktgen_bench):
    measured = pktgen_bench(pktgen_dut)
    assert 0 < measured.received <= measured.sent
