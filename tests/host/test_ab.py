"""Two kernels side by side, for real: `pytest --pktgen-vm --pktgen-vm-kernel A
--pktgen-vm-kernel B` from the host, two blocks (a boot each), each kernel's rounds pooled and
B compared with A. Both are the lab's stock kernel, and the test paces pktgen at a known rate:
the known answer is "no change", a ratio of 1.000 within a thousandth."""

from __future__ import annotations

import json
import subprocess
import sys

from pytest_pktgen.lab import vm

PACED = '''
import pytest


@pytest.mark.pktgen(frame=64, count=10000, rounds=3)
def test_paced(dummy, pktgen_bench):
    pktgen_bench(dummy, ratep=40000)
'''


def test_a_kernel_against_itself_in_two_blocks(pytester):
    pytester.makepyfile(test_paced=PACED)
    kernel = str(vm.find_kernel())
    out = pytester.path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pktgen-vm", "--pktgen-vm-kernel", kernel,
         "--pktgen-vm-kernel", kernel, "--pktgen-vm-blocks", "2", "--pktgen-vm-nics", "0",
         "--pktgen-vm-cpus", "1", "--pktgen-vm-memory", "1G", "--pktgen-vm-timeout", "300",
         "--pktgen-no-plots", "--pktgen-out", str(out), "-p", "no:cacheprovider",
         "test_paced.py"],
        cwd=pytester.path, capture_output=True, text=True, timeout=700)
    print(proc.stdout[-4000:], proc.stderr[-2000:])
    assert proc.returncode == 0  # compared, and nothing but "no change"
    said = proc.stdout
    assert said.count("pytest-pktgen VM lab: kernel") == 2  # a boot per block
    assert "block 1 of 2: kernel A" in said and "block 2 of 2: kernel B" in said
    row = next(line for line in said.splitlines() if "test_paced" in line and " pps " in line)
    assert row.split()[2] == "1.000" and row.endswith("no change")
    assert "1 comparison: 1 no change" in said
    for side in "AB":
        pooled = json.loads((out / f"ab-{side}.json").read_text())
        assert [len(r["per_round"]) for r in pooled["results"]] == [3]
    assert sorted(p.name for p in (out / "ab").iterdir()) == ["1-A", "2-B"]
