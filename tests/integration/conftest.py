"""Links in the test's own namespace, for the wire-protocol tests that drive pktgen directly."""

from __future__ import annotations

import pytest
from leftovers import state

from pytest_pktgen.host.links import dummy_link, veth_link


@pytest.fixture
def dummy_dev(pktgen_module) -> str:
    """A dummy device in this namespace, up; deleted afterwards."""
    with dummy_link() as name:
        yield name


@pytest.fixture
def veth_dev(pktgen_module) -> tuple[str, str]:
    """A veth pair in this namespace, both ends up; deleted afterwards."""
    with veth_link() as names:
        yield names


# --- nothing outlives the suite ----------------------------------------------------------

def pytest_sessionstart(session):
    session.config._pktgen_state_before = state()


def pytest_sessionfinish(session, exitstatus):
    """After every fixture is torn down: compare with the start; a difference fails the run."""
    before = getattr(session.config, "_pktgen_state_before", None)
    if before is None:
        return
    after = state()
    problems = [f"{key}: before {before[key]!r}, after {after[key]!r}"
                for key in ("netns", "our_links", "irq_masks", "modules")
                if before[key] != after[key]]
    lab_links = {n: up for n, up in after["links"].items() if not n.startswith("pg")}
    if lab_links != {n: up for n, up in before["links"].items() if not n.startswith("pg")}:
        problems.append(f"links: before {before['links']}, after {after['links']}")
    from pytest_pktgen.pktgen.proc import Pktgen

    pg = Pktgen()
    if pg.available and pg.devices():
        problems.append(f"pktgen devices left: {pg.devices()}")
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for problem in problems:
            reporter.write_line(f"LEFT BEHIND: {problem}", red=True)
        session.exitstatus = 1
