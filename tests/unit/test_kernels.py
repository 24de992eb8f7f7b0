"""Two kernels side by side (kernels.py): the blocks' order, the options' refusals, each
kernel's blocks pooled, and the comparison of the pools with its exit codes. The VM runs are
replaced by what real ones left (tests/data/captured/results-veth-paced-*.json, as a guest's
pytest writes them); tests/host/test_ab.py boots them for real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_pktgen import kernels
from pytest_pktgen.lab import vm
from pytest_pktgen.measurement import saved

CAPTURED = Path(__file__).parent.parent / "data" / "captured"
BEFORE, AFTER = (CAPTURED / f"results-veth-paced-{n}.json" for n in ("before", "after"))


def test_blocks_alternate_a_b_b_a():
    assert kernels.block_order(2) == [0, 1]
    assert kernels.block_order(4) == [0, 1, 1, 0]
    assert kernels.block_order(8) == [0, 1, 1, 0, 0, 1, 1, 0]


@pytest.mark.parametrize(("args", "message"), [
    (["--pktgen-vm-kernel", "a", "--pktgen-vm-kernel", "b", "--pktgen-vm-kernel", "c"],
     "*--pktgen-vm-kernel is given 3 times: once (the lab's kernel) or twice (A and B*"),
    (["--pktgen-vm-kernel", "a", "--pktgen-vm-blocks", "4"],
     "*--pktgen-vm-blocks: blocks alternate two kernels; give --pktgen-vm-kernel twice*"),
    (["--pktgen-vm-kernel", "a", "--pktgen-vm-kernel", "b", "--pktgen-vm-blocks", "3"],
     "*'3' is not an even number of blocks*"),
    (["--pktgen-vm-clock", "instructions", "--pktgen-vm-kvm", "on"],
     "*--pktgen-vm-kvm on asks for KVM, which has none to count*"),
    (["--pktgen-vm-clock", "instructions", "--pktgen-vm-cpus", "2"],
     "*--pktgen-vm-cpus 2: the instruction clock (--pktgen-vm-clock instructions) runs one*"),
    (["--pktgen-vm-clock", "cycles"], "*--pktgen-vm-clock*'cycles'*host, instructions*"),
    # a baseline of the other clock: refused before anything runs
    (["--pktgen-baseline", str(CAPTURED / "results-dummy-instructions.json")],
     "*results-dummy-instructions.json was measured by the instructions clock, this session "
     "measures by the host clock (--pktgen-vm-clock)*"),
    (["--pktgen-vm", "--pktgen-vm-clock", "instructions", "--pktgen-baseline", str(BEFORE)],
     "*was measured by the host clock, this session measures by the instructions clock*"),
])
def test_bad_kernel_options_are_usage_errors(pytester, args, message):
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == 4
    result.stderr.fnmatch_lines([message])


def _fake_lab(monkeypatch, by_kernel: dict[str, Path], codes: dict[str, int] | None = None):
    """vm.run_pytest_in_vm replaced: a block of kernel K leaves ``by_kernel[K]`` as its
    results.json (what the guest's pytest writes), and exits ``codes[K]`` (0)."""
    booted = []

    def run(opts, args, echo=print):
        booted.append(opts.kernel)
        warmups = [a for a in args if a.startswith("--pktgen-warmup")]
        assert warmups == (["--pktgen-warmup=2"] if "--pktgen-warmup=2" in args
                           else ["--pktgen-warmup=1"])  # a cold boot's first round: unmeasured
        out = Path(args[-1].removeprefix("--pktgen-out="))
        assert out.is_dir()  # made for the guest's tests to write into
        shutil.copy(by_kernel[opts.kernel], out / "results.json")
        return (codes or {}).get(opts.kernel, 0)

    monkeypatch.setattr(vm, "run_pytest_in_vm", run)
    monkeypatch.setattr(vm, "resolve_kernel", lambda k: (Path(k), f"release-{k}"))
    return booted


def test_each_kernel_s_blocks_are_pooled_and_b_is_compared_with_a(monkeypatch, tmp_path):
    booted = _fake_lab(monkeypatch, {"a": BEFORE, "b": AFTER})
    said: list[str] = []
    code = kernels.run_ab(vm.VmOptions(), ("a", "b"), ["tests/perf"], tmp_path, 4,
                          {"pps": 0.05}, 0.95, echo=said.append)
    assert booted == ["a", "b", "b", "a"]
    assert code == 1  # the 1500 B point's pps at 0.9: a regression
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["1-A", "2-B", "3-B", "4-A"]
    pool = saved.load(str(tmp_path / "ab-B.json"))
    one = saved.load(str(AFTER))
    for key, row in pool.rows.items():  # two blocks' rounds, in order
        assert row["per_round"] == one.rows[key]["per_round"] * 2 and row["rounds"] == 10
    assert "block 3 of 4: kernel B (release-b)" in "\n".join(said)
    table = "\n".join(said)
    assert "test_veth[1500B]  pps" in table and "10+10" in table
    assert (tmp_path / "ab-compare.png").read_bytes()[:4] == b"\x89PNG"


def test_a_kernel_against_itself_is_no_regression(monkeypatch, tmp_path):
    _fake_lab(monkeypatch, {"a": BEFORE, "b": BEFORE})
    code = kernels.run_ab(vm.VmOptions(), ("a", "b"), ["--pktgen-warmup=2"], tmp_path, 2,
                          {"lat_p50_us": 0.5, "lat_p99_us": 0.9}, 0.95, plots=False,
                          echo=lambda s: None)
    assert code == 0 and not (tmp_path / "ab-compare.png").exists()


def test_a_block_that_cannot_finish_ends_the_run_without_a_comparison(monkeypatch, tmp_path):
    booted = _fake_lab(monkeypatch, {"a": BEFORE, "b": AFTER}, codes={"b": 3})
    said: list[str] = []
    assert kernels.run_ab(vm.VmOptions(), ("a", "b"), [], tmp_path, 4, {}, 0.95,
                          echo=said.append) == 3
    assert booted == ["a", "b"] and "no comparison of a one-sided run" in said[-1]
    assert not (tmp_path / "ab-A.json").exists()


def test_searches_pool_to_the_widest_bounds():
    goal = {"search_goal": {"loss_ratio": 0.0}, "relevant_lower_bound": 10_000.0,
            "relevant_upper_bound": 10_100.0}
    one = saved.Saved("1", searches={"k": {"goals": [goal]}})
    two = saved.Saved("2", searches={"k": {"goals": [{**goal, "relevant_lower_bound": 9_900.0,
                                                       "relevant_upper_bound": 10_050.0}]}})
    pooled = saved.pooled([one, two], "p")
    assert pooled.searches["k"]["goals"][0]["relevant_lower_bound"] == 9_900.0
    assert pooled.searches["k"]["goals"][0]["relevant_upper_bound"] == 10_100.0
    json.dumps(pooled.document())  # a document again


def _bisect_run(*args, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pytest_pktgen", "bisect-run", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_a_bisect_step_that_does_not_build_is_skipped(tmp_path):
    """git bisect run's 125: a tree that does not build (here: no kernel at all) is skipped,
    never called bad, and the build's own error is shown."""
    done = _bisect_run("--good", BEFORE, "--tree", tmp_path, "--", "t.py", cwd=tmp_path)
    assert done.returncode == 125
    assert f"pytest-pktgen bisect: {tmp_path} does not build (exit 2):" in done.stdout
    assert "No rule to make target 'allnoconfig'" in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--good", "nowhere.json"], "--good nowhere.json: no such file"),
    (["--tree", "."], "one of the arguments --good --good-kernel is required"),
    (["--good", "a.json", "--good-kernel", "k"], "not allowed with argument --good"),
    (["--good-kernel", "k", "--blocks", "3"], "'3' is not an even number of blocks"),
])
def test_a_bisect_step_s_bad_usage_stops_the_bisect(tmp_path, args, message):
    """Above 127 git bisect run stops: a wrong command never marks a commit good or bad."""
    done = _bisect_run(*args, cwd=tmp_path)
    assert done.returncode == 128 and message in done.stderr


def _block(pps: list[float]) -> list[dict]:
    return [{"pps": p, "offered": 100, "sent": 100, "received": 99} for p in pps]


def test_a_pooled_row_sums_its_rounds_and_keeps_its_blocks():
    one = saved.Saved("1", rows={"k": {"test": "t", "pps": 1.0, "per_round": _block([10, 12])}})
    two = saved.Saved("2", rows={"k": {"test": "t", "pps": 2.0, "per_round": _block([14])}})
    row = saved.pooled([one, two], "p").rows["k"]
    assert (row["rounds"], row["pps"], row["pps_min"], row["pps_max"]) == (3, 12, 10, 14)
    assert (row["offered"], row["received"], row["loss_ratio"]) == (300, 297, 0.01)
    assert [len(b) for b in row["per_block"]] == [2, 1]


def test_blocks_that_differ_compare_by_their_means():
    """Two boots of each kernel whose rounds agree within a boot but not between boots: the
    rounds are not independent, so the blocks' means are the units (2 against 2: wide), and
    the comparison says so; blocks alike pool their rounds."""
    def session(*blocks):
        return saved.pooled([saved.Saved(str(n), rows={"k": {"test": "t", "per_round":
                                                            _block(b)}})
                             for n, b in enumerate(blocks)], "p").rows["k"]

    apart = session([100.0, 100.5, 99.5], [120.0, 120.5, 119.5])
    alike = session([100.0, 101.0, 99.0], [100.5, 99.5, 100.0])
    assert saved.blocks_differ(apart, "pps") < 1e-4 and saved.blocks_differ(alike, "pps") is None
    (by_means,) = saved.compare_subject("k", apart, apart, {"pps": 0.05}, 0.95)[:1]
    assert by_means.before == pytest.approx((100.0, 120.0), rel=1e-4)
    assert "the blocks differ beyond their rounds' spread" in by_means.note
    (pooled,) = saved.compare_subject("k", alike, alike, {"pps": 0.05}, 0.95)[:1]
    assert len(pooled.before) == 6 and pooled.note == ""
