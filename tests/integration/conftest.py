"""Links in the test's own namespace, for the wire-protocol tests that drive pktgen directly."""

from __future__ import annotations

import pytest

from pytest_pktgen.links import dummy_link, veth_link


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
