"""One step of ``git bisect run`` in a kernel tree: the tree built with the VM lab's config
(scripts/build-lab-kernel.sh: allnoconfig plus patches/kconfig, the patched kernel's own, so a
step is an incremental build), booted in the VM lab, the user's tests run on it, and its rounds
compared with the good kernel's: saved ones (``--good results.json``) or measured side by side
in the same step (``--good-kernel PATH``, an A/B run). Exit 0: good (no regression, every
comparison settled), 1: bad (a regression, or a failed test), 125: skip (it does not build, the
lab could not run it, or something stayed undecided), 128: stop (bad usage, which every step
would repeat), as ``git bisect run`` reads them (paths absolute: it runs in the tree)::

    git bisect start BAD GOOD
    git bisect run python -m pytest_pktgen bisect-run --good /lab/good.json -- /lab/tests/perf
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .measurement import report, saved

GOOD, BAD, SKIP, USAGE = 0, 1, 125, 128  # above 127, git bisect run stops
REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "scripts" / "build-lab-kernel.sh"
KCONFIG = REPO / "patches" / "kconfig"


def build(tree: Path, kconfig: Path = KCONFIG, echo: Callable[[str], None] = print) -> bool:
    """The tree built with the lab's config; False (said) where it does not build."""
    done = subprocess.run([str(BUILD), str(tree), str(kconfig)], capture_output=True, text=True)
    if done.returncode != 0:
        echo(f"pytest-pktgen bisect: {tree} does not build (exit {done.returncode}):")
        echo("\n".join(done.stderr.splitlines()[-20:]))
        return False
    return True


def step(tree: Path, pytest_args: Sequence[str], *, good: str | None = None,
         good_kernel: str | None = None, thresholds: dict, confidence: float,
         blocks: int = 4, kconfig: Path = KCONFIG,
         echo: Callable[[str], None] = print) -> int:
    """Build ``tree``, measure it, judge it against ``good`` (saved rounds) or
    ``good_kernel`` (side by side): GOOD, BAD or SKIP."""
    if (good is None) == (good_kernel is None):
        raise ValueError("bisect-run: give --good FILE (saved rounds) or --good-kernel PATH "
                         "(measured side by side), one of them")
    before = None
    if good is not None:
        before = saved.load(good)  # a bad file fails before anything is built
    if not build(tree, kconfig, echo):
        return SKIP
    # the step's reports, where the guest can write (the working directory), gone after it
    with tempfile.TemporaryDirectory(prefix=".pktgen-bisect-", dir=Path.cwd()) as out:
        return _measure(tree, pytest_args, Path(out), before, good, good_kernel, thresholds,
                        confidence, blocks, echo)


def _measure(tree, pytest_args, out, before, good, good_kernel, thresholds, confidence,
             blocks, echo) -> int:
    pytest = [sys.executable, "-m", "pytest", "--pktgen-vm", "-p", "no:cacheprovider",
              f"--pktgen-out={out}", "--pktgen-no-plots"]
    threshold = ",".join(f"{k}={v}" for k, v in thresholds.items())
    if good_kernel is not None:
        code = subprocess.run([*pytest, "--pktgen-vm-kernel", good_kernel, "--pktgen-vm-kernel",
                               str(tree), f"--pktgen-vm-blocks={blocks}",
                               f"--pktgen-threshold={threshold}",
                               f"--pktgen-confidence={confidence}", *pytest_args]).returncode
        # 4: the tests' own usage is wrong (every step would fail so): stop the bisect
        verdict = {0: GOOD, 1: BAD, 4: USAGE}.get(code, SKIP)
        echo(f"pytest-pktgen bisect: {tree} against {good_kernel} side by side: exit {code}, "
             f"{_said(verdict)}")
        return verdict
    ran = subprocess.run([*pytest, "--pktgen-vm-kernel", str(tree), *pytest_args]).returncode
    if ran == 4:
        echo("pytest-pktgen bisect: pytest refused the tests' arguments (exit 4): stopping")
        return USAGE
    if ran not in (0, 1):
        echo(f"pytest-pktgen bisect: the VM lab could not run {tree} (exit {ran}): skip")
        return SKIP
    try:
        after = saved.load(str(out / "results.json"))
    except saved.SavedError as err:
        echo(f"pytest-pktgen bisect: nothing measured on {tree} ({err}): skip")
        return SKIP
    try:
        saved.check_clocks(before, after)
    except saved.SavedError as err:  # every step would measure so: stop the bisect
        echo(f"pytest-pktgen bisect: {err}: stopping")
        return USAGE
    _, code = report.judge(before, after, thresholds, confidence, echo=echo,
                           title=f"pytest-pktgen bisect: {tree} against {good}")
    # a failed test on this kernel is bad, as a regression is
    verdict = BAD if ran == 1 or code == 1 else (GOOD if code == 0 else SKIP)
    echo(f"pytest-pktgen bisect: {tree} against {good}: {_said(verdict)}"
         + (" (a test failed)" if ran == 1 else ""))
    return verdict


def _said(verdict: int) -> str:
    return {GOOD: "good (exit 0)", BAD: "bad (exit 1)", USAGE: "stop (exit 128)"}.get(
        verdict, "skip (exit 125)")
