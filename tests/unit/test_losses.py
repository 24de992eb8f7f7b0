"""Where the loss happened: what moved between two snapshots of the drop counters, and the
verdict's line (the counters themselves are read in the VM lab: tests/integration)."""

from __future__ import annotations

from pytest_pktgen.host import drops
from pytest_pktgen.lab.losses import moved, verdict
from pytest_pktgen.measurement.row import Row


def test_only_counters_that_went_up_moved():
    before = {"sink rx_missed_errors": 10, "tx tx_dropped": 0, "softnet_dropped": 5}
    after = {"sink rx_missed_errors": 1_214, "tx tx_dropped": 0, "softnet_dropped": 5,
             "router out0 tx_dropped": 3}  # a link not in the first snapshot: not a move
    assert moved(before, after) == {"sink rx_missed_errors": 1_204}


def test_the_verdict_names_the_counters_largest_first():
    assert verdict(0, 0, {}) == verdict(0, 0, {"softnet_time_squeeze": 1}) == ""
    assert verdict(1_210, 6, {"softnet_dropped": 4, "sink rx_missed_errors": 1_200}) == (
        "lost 1,210: refused by the tx driver 6; sink rx_missed_errors +1,200; "
        "softnet_dropped +4")
    assert verdict(50, 0, {}).startswith("lost 50: no drop counter moved")
    # a squeezed NAPI poll counts no frame: never a place of loss, on any machine
    assert verdict(8, 8, {"tx tx_dropped": 8, "softnet_time_squeeze": 1,
                          "gen1 softnet_time_squeeze": 2}) == (
        "lost 8: refused by the tx driver 8; tx tx_dropped +8")


def test_a_row_says_where_its_loss_happened():
    row = Row("t", offered=1_000, sent=990, received=900,
              drops={"softnet_dropped": 90})
    assert row.where == "lost 100: refused by the tx driver 10; softnet_dropped +90"
    assert row.as_dict()["where"] == row.where
    assert Row("t", offered=5, sent=5, received=5).where == ""
    # the tx link counted fewer transmitted than pktgen sent: lost on its way out
    short = Row("t", offered=1_000, sent=1_000, received=900, tx_link_packets=900)
    assert short.where == "lost 100: the tx link transmitted 100 fewer than pktgen sent"
    more = Row("t", offered=1_000, sent=1_000, received=900, tx_link_packets=1_003)
    assert "tx link" not in more.where  # other traffic on the link: no claim
    assert short.as_dict()["tx_link_packets"] == 900


def test_a_snapshots_tx_packets_are_the_tx_links_and_apart_from_the_drops():
    from pytest_pktgen.lab.losses import split

    counters = {"tx tx_packets": 1_000, "tx tx_dropped": 4, "softnet_dropped": 1}
    assert split(counters) == ({"tx tx_dropped": 4, "softnet_dropped": 1}, 1_000)
    assert split({"sink rx_dropped": 2}) == ({"sink rx_dropped": 2}, None)


def test_softnet_stat_sums_every_cpus_drops(tmp_path):
    # two CPUs as /proc/net/softnet_stat shows them (hex; processed, dropped, time_squeeze...)
    path = tmp_path / "softnet_stat"
    path.write_text("000000d9 00000002 00000001 00000000 00000000 00000000 00000000 00000000 "
                    "00000000 00000000 00000000 00000000 00000000 00000000 00000000\n"
                    "0000e6b0 0000000a 00000000 00000000 00000000 00000000 00000000 00000000 "
                    "00000000 00000000 00000000 00000000 00000001 00000000 00000001\n")
    assert drops.softnet(str(path)) == {"softnet_dropped": 12, "softnet_time_squeeze": 1}
    assert set(drops.softnet()) == {"softnet_dropped", "softnet_time_squeeze"}  # this host's
