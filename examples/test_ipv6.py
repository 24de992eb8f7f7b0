"""The paper's IPv6 setups (pktgen.conf-1-1-ip6 and -ip6-rdos) over the crossover.

IPv6 receivers drop UDP with a zero checksum, so UDPCSUM is on. The frame size counts the
40-byte IPv6 header like any other: 64 B frames carry 2 bytes of pktgen's payload header less.
"""

from __future__ import annotations

import pytest


@pytest.mark.pktgen(ipv6=True, flags=["UDPCSUM"])
@pytest.mark.pktgen_sweep(frame=[128, 512, 1500])
def test_ipv6(pktgen_dut, pktgen_bench):
    measured = pktgen_bench(pktgen_dut)
    assert 0 < measured.received <= measured.sent


@pytest.mark.pktgen(ipv6=True, frame=128, flags=["UDPCSUM", "IPDST_RND"],
                    dst6_min="2001:2::1", dst6_max="2001:2::ffff:ffff")
def test_ipv6_route_dos(pktgen_dut, pktgen_bench):
    measured = pktgen_bench(pktgen_dut)
    assert 0 < measured.received <= measured.sent
