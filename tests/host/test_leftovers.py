"""A killed process's leftovers undone by hand, on this host's own kernel: namespaces, links
and a moved link need no pktgen (the next pytest session doing the same, pktgen devices
included, is a VM-lab test: test_signals)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nics
import pytest

from pytest_pktgen.host.links import veth_link
from pytest_pktgen.host.netlink import IPRoute
from pytest_pktgen.host.netlink import netns as pr_netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="LOUD: moving links needs root")

CHILD = '''
import sys
import time

from pytest_pktgen.host import links, netns, nicstate

ns = netns.create("pgg")
nicstate.move_away(nicstate.before_moving(sys.argv[1]), ns)
with links.veth_link() as (link, _):
    print("MADE", ns, link, flush=True)
    time.sleep(120)
'''


def _ours() -> tuple[list[str], list[str]]:
    with IPRoute() as ipr:
        links = sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links())
    return sorted(n for n in pr_netns.listnetns() if n.startswith("pg")), links


def test_sigkill_then_the_clean_command_undoes_it():
    """``python -m pytest_pktgen clean``: the link a killed process moved comes home exactly
    as it was (addresses, routes, neighbour, sysctls, qdiscs), its namespace and link go."""
    with veth_link() as (nic, _), nics.dressed(nic, 95):
        before, nic_view = _ours(), nics.view(nic)
        pid, (ns, link) = nics.killed(CHILD, nic, said="MADE")
        namespaces, links = _ours()
        assert ns in namespaces and link in links and nic not in links
        clean = [sys.executable, "-m", "pytest_pktgen", "clean"]
        out = subprocess.run(clean, capture_output=True, text=True, check=True).stdout
        assert out == (f"pytest-pktgen: cleaned up after dead process {pid}: sent {nic} "
                       f"home from {ns}, restored as found; removed namespace(s) {ns}; removed "
                       f"link(s) {link}\n")
        assert _ours() == before
        assert nics.differences(nic_view, nics.view(nic)) == []
        out = subprocess.run(clean, capture_output=True, text=True, check=True).stdout
        assert out == "pytest-pktgen: nothing left by dead sessions\n"


STALE = '''
import time

from pytest_pktgen.host.ledger import ledger

ledger().add("irqs", "99999", "1")  # an IRQ that is gone (its driver reloaded)
ledger().add("links", "pgstale0")  # a link that is gone
ledger().add("links", "lo")  # one the kernel refuses to delete
print("LISTED", ledger().path, flush=True)
time.sleep(120)
'''


def test_a_ledger_the_cleaner_cannot_undo_never_stops_a_session(tmp_path):
    """A killed process's ledger naming IRQ 99999 (gone), a link that is gone and one the
    kernel refuses to delete: the cleaner undoes what it can, says what it cannot and keeps
    only that for the next cleaner; the next pytest session runs, its header says it."""
    pid, (written,) = nics.killed(STALE, said="LISTED")
    path = Path(written)
    try:
        clean = subprocess.run([sys.executable, "-m", "pytest_pktgen", "clean"],
                               capture_output=True, text=True)
        said = clean.stdout
        assert clean.returncode == 1, said + clean.stderr  # not all of it could be undone
        assert f"cleaned up after dead process {pid}: IRQ(s) 99999 gone" in said
        assert "link lo: " in said and "kept for the next cleaner" in said
        assert "pgstale0" not in said  # gone already: nothing to say
        assert f"stays in {path.parent}/owner-{pid}-*.json" in said
        kept = json.loads(path.read_text())
        assert (kept["links"], kept["irqs"], kept["nics"]) == (["lo"], {}, {})
        (tmp_path / "test_next.py").write_text("def test_next():\n    pass\n")
        session = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                                  str(tmp_path / "test_next.py")], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=300)
        assert session.returncode == 0, session.stdout + session.stderr
        assert f"pytest-pktgen: cleaned up after dead process {pid}:" in session.stdout
        assert "1 passed" in session.stdout
    finally:
        path.unlink(missing_ok=True)
        path.with_suffix(".lock").unlink(missing_ok=True)
