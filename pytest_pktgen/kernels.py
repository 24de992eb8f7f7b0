"""Two kernels side by side in the VM lab: ``pytest --pktgen-vm --pktgen-vm-kernel A
--pktgen-vm-kernel B tests/perf/`` runs the same session on each kernel in alternating blocks
(A B B A, A B B A, ...: a drift of the host over the run weighs on both alike), pools each
kernel's rounds point by point, and compares B against A with the statistics of a baseline
(:mod:`~pytest_pktgen.measurement.compare`). Each block's reports stay in
``--pktgen-out``/ab/N-A (or -B); the pooled sessions are ab-A.json and ab-B.json beside them,
the forest plot ab-compare.png.

Rounds of one boot may share what the boot gave them (where the kernel's memory landed, the
host's load then): where a kernel's blocks differ beyond their rounds' spread (one-way ANOVA,
:func:`~pytest_pktgen.measurement.saved.blocks_differ`), that point compares by the blocks'
means, and says so.

Exit code: the blocks' own where one could not run to its end (a usage error, a hung guest:
the comparison would be one-sided), else ``compare``'s: 1 on a regression (or a failed test in
a block), 2 where something is undecided, 4 where no point was measured on both, 0 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .lab import vm
from .measurement import report, saved

SIDES = "AB"


def block_order(blocks: int) -> list[int]:
    """Which kernel each block boots (0: A, 1: B): A B B A repeated, ``blocks`` of them."""
    return [(0, 1, 1, 0)[n % 4] for n in range(blocks)]


def run_ab(opts: vm.VmOptions, kernels: tuple[str, str], args: list[str], out: Path,
           blocks: int, thresholds: dict, confidence: float, plots: bool = True, *,
           echo: Callable[[str], None] = print) -> int:
    """Run ``args`` (pytest's, without the VM lab's options) on both kernels in ``blocks``
    alternating blocks, then compare them point by point; the exit code (module docstring).
    Each block is a fresh boot whose first round runs cold (measured under TCG: a block's
    first rounds at half the pps of its others), so each measurement warms up with one
    unmeasured round unless ``args`` set ``--pktgen-warmup``."""
    if not any(a.split("=", 1)[0] == "--pktgen-warmup" for a in args):
        args = [*args, "--pktgen-warmup=1"]
    releases = [vm.resolve_kernel(k)[1] for k in kernels]  # both checked before a boot
    for side, kernel, release in zip(SIDES, kernels, releases, strict=True):
        echo(f"pytest-pktgen A/B: kernel {side} {kernel} ({release})")
    failed = False
    outs: list[list[Path]] = [[], []]
    for n, which in enumerate(block_order(blocks), 1):
        side = SIDES[which]
        block_out = out / "ab" / f"{n}-{side}"
        block_out.mkdir(parents=True, exist_ok=True)  # there for the guest's tests to write
        echo(f"pytest-pktgen A/B: block {n} of {blocks}: kernel {side} ({releases[which]})")
        code = vm.run_pytest_in_vm(replace(opts, kernel=kernels[which]),
                                   [*args, f"--pktgen-out={block_out}"], echo=echo)
        if code not in (0, 1):
            echo(f"pytest-pktgen A/B: block {n} (kernel {side}) ended with exit code {code}: "
                 "no comparison of a one-sided run")
            return code
        failed |= code == 1
        outs[which].append(block_out / "results.json")
    try:
        pools = [saved.pooled([saved.load(str(p)) for p in paths], str(out / f"ab-{side}.json"))
                 for side, paths in zip(SIDES, outs, strict=True)]
    except saved.SavedError as err:
        echo(f"pytest-pktgen A/B: a block left no results to compare: {err}")
        return 1 if failed else 2
    for pool in pools:
        report.write_json(Path(pool.path), pool.document())
    found, code = report.judge(
        *pools, thresholds, confidence, echo=echo,
        title=f"pytest-pktgen A/B: kernel B ({releases[1]}) against kernel A ({releases[0]}), "
              f"{blocks} blocks, each kernel's rounds pooled",
        plot=out / "ab-compare.png" if plots else None)
    return 1 if failed or code == 1 else code
