"""IMIX, and where the loss happened, on answers known in advance: pktgen counts the frames of
each size it sent, the sink's byte counter says which arrived, and a sink whose MTU is below
the large frames makes exactly those die at the sending veth: it refuses what its peer cannot
take (pktgen counts each as an error) and counts it as dropped, on both of its ends."""

from __future__ import annotations

import pytest

from pytest_pktgen.host.netdev import route
from pytest_pktgen.pktgen.params import pkt_size_of

pytestmark = pytest.mark.integration

SMALL, LARGE = 64, 1518  # frames with the FCS
IMIX = [(SMALL, 3), (LARGE, 1)]  # a quarter of the frames large
COUNT = 8_000
SHARE_MARGIN = 0.025  # 5 standard deviations of a quarter of 8,000 frames drawn at random


def _set_mtu(endpoint, mtu: int) -> None:
    with route(None, endpoint.netns) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=endpoint.ifname)[0], mtu=mtu)


@pytest.mark.pktgen_sweep(imix=[IMIX])
@pytest.mark.pktgen(count=COUNT, rounds=1, rx="ifstats")
def test_imix_sizes_arrive_as_sent_and_a_small_mtu_is_named_where_they_died(
        veth, pktgen_point, pktgen_bench, rx_counter):
    assert pktgen_point.id == "imix64x3+1518x1"
    # the sizes pktgen drew, a quarter large; the sink's bytes are exactly theirs
    ifstats = rx_counter(veth, "ifstats")
    result = veth.run(veth.config(count=COUNT, **pktgen_point.params()), rx=[ifstats])
    (status,) = result.devices.values()
    counts = status.imix_counts
    assert sorted(counts) == [pkt_size_of(SMALL), pkt_size_of(LARGE)]
    assert sum(counts.values()) == result.sent == COUNT
    assert abs(counts[pkt_size_of(LARGE)] / COUNT - 0.25) < SHARE_MARGIN, counts
    got = result.received["ifstats"]
    assert got.packets == COUNT
    assert got.bytes == sum(size * n for size, n in counts.items())  # no FCS, as pkt_size

    # the sink's MTU below the large frames: each of them dies at the sending veth
    _set_mtu(veth.sink, 1000)
    row = pktgen_bench(veth).row
    print(row.sizes, row.avg_frame, row.where, row.drops)
    large = row.sizes[LARGE]
    assert sorted(row.sizes) == [SMALL, LARGE]
    assert row.sizes[SMALL] == row.sent == row.received == COUNT  # every small frame arrived
    assert sum(row.sizes.values()) == row.offered  # pktgen counts the refused ones too
    assert row.avg_frame == pytest.approx((SMALL * COUNT + LARGE * large) / row.offered)
    assert row.loss == row.errors == large > 0
    # the veth transmitted what it did not refuse (and what else the namespace sent, if any)
    assert COUNT <= row.tx_link_packets <= COUNT + 10
    assert row.drops["tx tx_dropped"] == large
    assert row.drops["sink rx_dropped"] == large  # a veth counts its peer's drops as its own
    assert set(row.drops) == {"tx tx_dropped", "sink rx_dropped"}  # and nothing else moved
    assert row.where == (f"lost {large:,}: refused by the tx driver {large:,}; "
                         f"sink rx_dropped +{large:,}; tx tx_dropped +{large:,}")
