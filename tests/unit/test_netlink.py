"""pyroute2 imported only when a netlink socket is first needed, entered without its eager
``__init__`` (start-up in the VM lab), and still whole for anyone who asks for more of it."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, sys
{before}
import pytest_pktgen.plugin
from pytest_pktgen.host import netlink
out = {{"after_plugin": sorted(m for m in sys.modules if m.startswith("pyroute2"))}}
with netlink.IPRoute() as ipr:
    out["links"] = [link.get("ifname") for link in ipr.get_links()]
netlink.netns  # and the namespace helpers
out["after_use"] = sorted(m for m in sys.modules if m.startswith("pyroute2"))
out["full_after_use"] = netlink.loaded_fully()
IPRoute, loaded_fully = netlink.IPRoute, netlink.loaded_fully
import pyroute2
from pyroute2 import NDB, IPRoute as Public
out["version"] = pyroute2.__version__
out["same_iproute"] = Public is IPRoute
out["ndb"] = NDB.__module__
out["full_at_end"] = loaded_fully()
print(json.dumps(out))
"""


def _probe(before: str = "") -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(before=before)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_plugin_loads_no_pyroute2_until_used_and_then_a_fraction():
    out = _probe()
    assert out["after_plugin"] == []
    loaded = out["after_use"]
    assert not out["full_after_use"]
    assert "pyroute2.iproute.linux" in loaded and "pyroute2.netns" in loaded
    for heavy in ("pyroute2.ndb.main", "pyroute2.ipdb", "pyroute2.conntrack",
                  "pyroute2.netlink.nl80211", "pyroute2.ipset"):
        assert heavy not in loaded
    assert "lo" in out["links"]  # and what it loaded works


def test_the_rest_of_pyroute2_is_there_when_asked_for():
    """A user's conftest importing NDB or reading __version__ gets pyroute2 as pyroute2 has it."""
    from importlib.metadata import version

    out = _probe()
    assert out["version"] == version("pyroute2")
    assert out["ndb"] == "pyroute2.ndb.main"
    assert out["same_iproute"]
    assert out["full_at_end"]


def test_a_pyroute2_imported_before_is_left_as_it_is():
    out = _probe(before="import pyroute2")
    assert out["full_after_use"]
    assert "pyroute2.ndb.main" in out["after_plugin"]
    assert out["same_iproute"] and out["version"]
