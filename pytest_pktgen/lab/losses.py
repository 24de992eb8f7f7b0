"""Where a run's loss happened: the drop and error counters of every link a topology's frames
cross (the tx link, a router's ends, the sink) and of the CPUs' backlog, before and after the
run; what moved, and a one-line verdict (``lost 1,204: sink rx_missed_errors +1,204``).
Links on other machines (``Endpoint.host``) are read there, and so is each machine's backlog
(``gen1 softnet_dropped``)."""

from __future__ import annotations

from .. import host
from ..host import drops

Place = tuple[str, str | None, str | None]  # (ifname, netns, host)


def places(topology, index: int = 0) -> dict[str, Place]:
    """The links frames from tx link ``index`` cross, by role: ``tx``, ``router <hop>``,
    ``sink`` -> (ifname, netns, host)."""
    ends = {"tx": topology.tx[index]}
    for name, hop in getattr(topology, "hops", {}).items():
        ends[f"router {name}"] = hop
    if topology.sink is not None:
        ends["sink"] = topology.sink
    return {role: (end.ifname, end.netns, end.host) for role, end in ends.items()}


def snapshot(where: dict[str, Place]) -> dict[str, int]:
    """Every counter of ``where``'s links (``sink rx_missed_errors``) and the backlog's of
    each machine now, one visit to each namespace; a link that cannot be read (gone with its
    namespace) is left out."""
    out: dict[str, int] = {}
    by_netns: dict[tuple[str | None, str | None], list[tuple[str, str]]] = {}
    for role, (ifname, netns, machine) in where.items():
        by_netns.setdefault((machine, netns), []).append((role, ifname))
    for (machine, netns), links in by_netns.items():
        try:
            counters = host.on(None, machine).call(
                drops.link_drops, [ifname for _, ifname in links], netns)
        except Exception:  # noqa: BLE001 - a deleted namespace: nothing to read
            continue
        for role, ifname in links:
            out.update({f"{role} {key}": value for key, value in counters.get(ifname, {}).items()
                        if key != drops.TX_PACKETS or role == "tx"})
    for machine in sorted({m for m, _ in by_netns} | {None}, key=lambda m: m or ""):
        backlog = host.on(None, machine).call(drops.softnet)
        out.update({(f"{machine} {k}" if machine else k): v for k, v in backlog.items()})
    return out


TX_SENT = f"tx {drops.TX_PACKETS}"  # what the tx link transmitted, in a snapshot
# counters kept with the drops that count no frames: a NAPI poll cut short by its budget (a busy
# CPU, seen moving by 1 in a run that lost nothing there): never a place of loss in a verdict
NOT_FRAMES = ("softnet_time_squeeze",)


def split(counters: dict[str, int]) -> tuple[dict[str, int], int | None]:
    """(the drop counters, the frames the tx link transmitted) of what moved."""
    rest = dict(counters)
    return rest, rest.pop(TX_SENT, None)


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The counters that went up between two snapshots, by how much."""
    return {key: after[key] - before[key] for key in after
            if key in before and after[key] > before[key]}


def verdict(lost: int, refused: int, counters: dict[str, int], unsent: int = 0) -> str:
    """One line on where ``lost`` frames went (``refused`` of them by the tx driver, pktgen's
    errors; ``unsent``: how many fewer the tx link counted as transmitted than pktgen as sent):
    the counters that moved, largest first; empty when nothing was lost."""
    if lost <= 0:
        return ""  # counters move for other traffic and reasons too: only a loss is placed
    parts = [f"{key} +{value:,}" for key, value in
             sorted(counters.items(), key=lambda kv: (-kv[1], kv[0]))
             if not key.endswith(NOT_FRAMES)]
    if unsent > 0:
        parts.insert(0, f"the tx link transmitted {unsent:,} fewer than pktgen sent")
    if refused:
        parts.insert(0, f"refused by the tx driver {refused:,}")
    if not parts:
        return (f"lost {lost:,}: no drop counter moved on the links or the CPUs' backlog "
                "(lost where nothing counts: a wire, a device in between, a queue that drops "
                "silently)")
    return f"lost {max(lost, 0):,}: " + "; ".join(parts)
