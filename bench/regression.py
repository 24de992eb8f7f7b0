"""Bench 10, from the host: a kernel with a known added cost, found by an A/B run and by a
bisect. `make bench-regression` runs it (after `make patched-kernel`); it prints its figures and
appends them to bench/results.jsonl (section 10).

The kernel tree is a copy of the patched kernel's (its build kept, so every build here is
incremental) under git, with a history of 8 commits on top of it: 3 harmless ones (a comment in
drivers/net/dummy.c), then one that adds ``ndelay(DELAY_NS)`` to dummy_xmit, then 4 harmless
ones. pktgen sends on a dummy in its own thread, so the delay adds to each packet's time: the
slowed kernel's pps is known from the good one's, ``1 / (1 / pps_good + DELAY_NS)`` (plus what
ndelay itself costs). Every VM run here is on the instruction clock (``--pktgen-vm-clock
instructions``, PKTGEN_BENCH_CLOCK=host for the host's): a round's pps is the kernel's cost in
instructions, alike from run to run (on the host's clock TCG's rounds spread by 5 to 50 %).

1. The known regression, directly: an A/B run of the good kernel (the base) against the slowed
   one (the 4th commit) with many rounds (6 blocks of 5): its ratio and interval, against the
   ratio the added cost predicts.
2. The same with the defaults a user gets (4 blocks of 3 rounds): the verdict and whether its
   interval holds the direct ratio.
3. The lab's stock kernel against itself with the defaults (4 blocks of 3 rounds), a veth sweep
   of seven sizes counted and timed by pgrx: 28 comparisons, their verdicts.
4. ``git bisect run python -m pytest_pktgen bisect-run --good good.json`` from the 8th commit
   (bad) to the base (good): the commit it names, its steps and each step's time (build, boot,
   measure).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from pytest_pktgen.measurement import compare, saved  # noqa: E402
from pytest_pktgen.measurement.compare import DEFAULT_THRESHOLDS  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pytest-pktgen"
PATCHED = CACHE / "linux-6.1-pktgen"
TREE = CACHE / "linux-6.1-bisect"
WORK = CACHE / "bench-regression"
CASE = HERE / "regression_case.py"
SAME_CASE = HERE / "regression_same_case.py"
DELAY_NS = int(os.environ.get("PKTGEN_BENCH_DELAY_NS", "100"))
DUMMY = "drivers/net/dummy.c"
NDELAY_SPUN = 5 * 1e9 / 2**32  # what x86's ndelay spins per nanosecond asked: 1.1642
RUN_ID = os.environ.get("PKTGEN_BENCH_RUN") or time.strftime("%Y%m%dT%H%M%S")
# the instruction clock: a round's pps is the kernel's cost in instructions, the same from run
# to run (under the host's clock, TCG's rounds spread by 5 to 50 %: run 20261208T0107)
CLOCK = ["--pktgen-vm-clock", os.environ.get("PKTGEN_BENCH_CLOCK", "instructions")]
VM = ["--pktgen-vm-nics", "0", "--pktgen-no-plots", "-p", "no:cacheprovider", *CLOCK]


def sh(*cmd: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, check=check, text=True, capture_output=True)


def git(*args: str) -> str:
    return sh("git", "-c", "user.name=bench", "-c", "user.email=bench@invalid", "-c", "gc.auto=0",
              *args,
              cwd=TREE).stdout.strip()


def history() -> dict[str, str]:
    """The kernel tree under git with its 8 commits on the base; {"base", "slow", "head"} ->
    sha. A history made with another DELAY_NS is made again on the same base."""
    if not (TREE / ".git").exists():
        shutil.rmtree(TREE, ignore_errors=True)
        sh("cp", "-a", str(PATCHED), str(TREE))  # the build too: incremental from here
        # Debian's linux-source ignores everything at its top level ("/*"): the kernel's own
        # rules then keep the build's outputs out of the history
        ignore = TREE / ".gitignore"
        ignore.write_text(ignore.read_text().replace("\n/*\n!/debian/\n", "\n"))
        git("init", "-q")
        git("add", "-A")
        git("commit", "-q", "-m", "base: the patched lab kernel")
    sh("git", "bisect", "reset", cwd=TREE, check=False)
    base = git("rev-list", "--max-parents=0", "HEAD")
    slow = f"dummy: {DELAY_NS} ns more per packet (the regression)"
    if sh("git", "rev-parse", "-q", "--verify", "bench", cwd=TREE, check=False).returncode == 0:
        revs = git("rev-list", "--reverse", "bench").split()
        if len(revs) == 9 and git("log", "-1", "--format=%s", revs[4]) == slow:
            return {"base": revs[0], "slow": revs[4], "head": revs[-1]}
    git("checkout", "-q", "-B", "bench", base)
    for n in range(1, 9):
        source = (TREE / DUMMY).read_text()
        if n == 4:
            source = source.replace(
                "\tdev_lstats_add(dev, skb->len);\n",
                f"\tndelay({DELAY_NS}); /* bench 10: a known cost per packet */\n"
                "\tdev_lstats_add(dev, skb->len);\n", 1)
            subject = slow
        else:
            source = source.replace("/* dummy.c: a dummy net driver",
                                    f"/* harmless {n} */\n/* dummy.c: a dummy net driver", 1)
            subject = f"dummy: a harmless comment ({n})"
        (TREE / DUMMY).write_text(source)
        git("commit", "-q", "-am", subject)
    revs = git("rev-list", "--reverse", "HEAD").split()
    return {"base": revs[0], "slow": revs[4], "head": revs[-1]}


def kernel_at(rev: str, name: str) -> tuple[Path, float]:
    """The bzImage of ``rev``, copied out (the tree moves on); the build's seconds."""
    git("checkout", "-q", rev)
    started = time.monotonic()
    sh(str(REPO / "scripts" / "build-lab-kernel.sh"), str(TREE))
    built = time.monotonic() - started
    WORK.mkdir(parents=True, exist_ok=True)
    image = WORK / f"{name}.bzImage"
    shutil.copy(TREE / "arch/x86/boot/bzImage", image)
    return image, built


def pytest(*args: str, cwd: Path = WORK) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "--pktgen-vm", *VM, *args],
                          cwd=cwd, text=True, capture_output=True)
    return done.returncode, time.monotonic() - started, done.stdout + done.stderr


def ab(good: Path, slow: Path, blocks: int, rounds: int, out: Path) -> dict:
    code, took, said = pytest("--pktgen-vm-kernel", str(good), "--pktgen-vm-kernel", str(slow),
                              f"--pktgen-vm-blocks={blocks}", f"--pktgen-repeats={rounds}",
                              f"--pktgen-out={out}", str(CASE))
    pools = [saved.load(str(out / f"ab-{side}.json")) for side in "AB"]
    found, _ = saved.compare_sessions(*pools, DEFAULT_THRESHOLDS, 0.95)
    (pps,) = [c for c in found if c.metric.name == "pps"]
    good_pps = [r["pps"] for row in pools[0].rows.values() for r in row["per_round"]]
    return {"exit": code, "seconds": round(took), "comparison": pps, "good_pps": good_pps,
            "output": said}


def detection(pools: list[saved.Saved], seconds_per_round: float) -> list[str]:
    """Detection power at the spread the A/A run saw (each point's pps rounds, both sides):
    the rounds on each side that settle, 4 times in 5, a true change of 2 % (5 %) against a
    threshold of half of it, and the lab time that is at the A/A run's seconds per round."""
    import math

    out = []
    for key, row in pools[0].rows.items():
        then, now = saved.rounds_of(row, "pps"), saved.rounds_of(pools[1].rows[key], "pps")
        if len(then) < 2 or len(now) < 2:
            continue
        logs = [math.log(v) for v in then], [math.log(v) for v in now]
        spread = [statistics.stdev(x) for x in logs]
        said = []
        for change in (0.02, 0.05):
            centre = statistics.fmean(logs[0])
            # the same spread around a mean moved by the change: what a real one would show
            shifted = [v - statistics.fmean(logs[1]) + centre + math.log(1 - change)
                       for v in logs[1]]
            n = compare.rounds_needed(logs[0], shifted, (math.log(1 - change / 2),), 0.95)
            said.append(f"{change:.0%}: {n or 'more than 100,000'} rounds each"
                        + (f" (~{2 * n * seconds_per_round / 60:.0f} min of lab time)"
                           if n else ""))
        out.append(f"detection at {key.rpartition('::')[2]} (pps spread "
                   f"{spread[0]:.1%}/{spread[1]:.1%}): " + "; ".join(said))
    return out


def main() -> None:
    revs = history()
    good, built_good = kernel_at(revs["base"], "good")
    slow, built_slow = kernel_at(revs["slow"], "slow")
    rows, notes = [], []

    direct = ab(good, slow, 6, 5, WORK / "direct")
    c = direct["comparison"]
    mean_good = sum(direct["good_pps"]) / len(direct["good_pps"])
    # x86's __ndelay(n) spins n x 5 x tsc_hz / 2^32 TSC cycles: 5 is 2^32 / 10^9 rounded up
    predicted = 1 / (1 + NDELAY_SPUN * DELAY_NS * 1e-9 * mean_good)
    rows.append({"run": "direct: 6 blocks x 5 rounds", "ratio": c.estimate, "low": c.low,
                 "high": c.high, "verdict": c.verdict, "predicted": predicted,
                 "seconds": direct["seconds"]})
    default = ab(good, slow, 4, 3, WORK / "default")
    d = default["comparison"]
    rows.append({"run": "defaults: 4 blocks x 3 rounds", "ratio": d.estimate, "low": d.low,
                 "high": d.high, "verdict": d.verdict, "predicted": predicted,
                 "seconds": default["seconds"]})
    # the same kernel against itself: the stock one (pgrx loads there), 28 comparisons
    stock = sorted(Path("/boot").glob("vmlinuz-*"))[-1]
    code, took, _ = pytest("--pktgen-vm-kernel", str(stock), "--pktgen-vm-kernel", str(stock),
                           "--pktgen-vm-blocks=4", "--pktgen-rx=kmod",
                           f"--pktgen-out={WORK / 'same'}", str(SAME_CASE))
    pools = [saved.load(str(WORK / "same" / f"ab-{side}.json")) for side in "AB"]
    found, _ = saved.compare_sessions(*pools, DEFAULT_THRESHOLDS, 0.95)
    verdicts = {v: sum(c.verdict == v for c in found) for v in
                ("regression", "undecided", "no change", "improvement")}
    rows.append({"run": f"stock against itself: {len(found)} comparisons, 4 blocks x 3",
                 "ratio": "", "low": "", "high": "",
                 "verdict": ", ".join(f"{n} {v}" for v, n in verdicts.items()),
                 "predicted": "no regression", "seconds": round(took)})
    notes.append(f"same kernel: {verdicts['regression']} of {len(found)} comparisons called a "
                 f"regression ({verdicts['regression'] / max(len(found), 1):.1%}; promised at "
                 f"most 2.5 % each), {verdicts['undecided']} undecided; exit {code}")
    for same in found:
        notes.append(f"  {same.key.rpartition('::')[2]} {same.line()}")
    rounds = sum(len(r["per_round"]) for pool in pools for r in pool.rows.values())
    notes += detection(pools, took / max(rounds, 1))
    notes.append(f"slowed kernel: ndelay({DELAY_NS}) in dummy_xmit; the good kernel's mean "
                 f"{mean_good:,.0f} pps predicts {predicted:.3f}; the direct interval "
                 f"{'holds' if c.low <= predicted <= c.high else 'does NOT hold'} it; the "
                 f"defaults' interval {'holds' if d.low <= c.estimate <= d.high else 'misses'} "
                 "the direct ratio")
    notes.append(f"builds: good {built_good:.0f} s, slowed {built_slow:.0f} s (incremental)")
    slowed = saved.load(str(WORK / "direct" / "ab-B.json"))
    slow_pps = [r["pps"] for row in slowed.rows.values() for r in row["per_round"]]
    added = 1e9 / statistics.fmean(slow_pps) - 1e9 / mean_good
    notes.append(f"added per packet: {added:.1f} ns of the clock (1e9 / slowed pps - 1e9 / good "
                 f"pps; ndelay({DELAY_NS}) spins {DELAY_NS} ns of the TSC, plus its own call "
                 "and last turn)")
    spread = statistics.stdev(direct["good_pps"]) / statistics.fmean(direct["good_pps"])
    notes.append(f"clock: {CLOCK[1]}; the good kernel's {len(direct['good_pps'])} rounds: "
                 f"{min(direct['good_pps']):,.0f}..{max(direct['good_pps']):,.0f} pps "
                 f"(relative standard deviation {spread:.2%})")

    # the good kernel's rounds saved, then git bisect run from head (bad) to base (good)
    code, _, said = pytest("--pktgen-vm-kernel", str(good), "--pktgen-repeats=3",
                           f"--pktgen-out={WORK / 'good'}", str(CASE))
    good_json = WORK / "good" / "results.json"
    git("checkout", "-q", revs["head"])
    git("bisect", "reset")
    git("bisect", "start", revs["head"], revs["base"])
    started = time.monotonic()
    run = subprocess.run(["git", "bisect", "run", sys.executable, "-m", "pytest_pktgen",
                          "bisect-run", "--good", str(good_json), "--", *CLOCK, str(CASE)],
                         cwd=TREE, text=True, capture_output=True)
    took = time.monotonic() - started
    log = git("bisect", "log")
    git("bisect", "reset")
    # the log marks the two ends given to bisect start too
    steps = log.count("# good:") + log.count("# bad:") + log.count("# skip:") - 2
    named = next((line.split()[0] for line in run.stdout.splitlines()
                  if line.endswith("is the first bad commit")), "none")
    rows.append({"run": f"bisect: {steps} steps", "ratio": "", "low": "", "high": "",
                 "verdict": f"names {named[:12]}", "predicted": f"{revs['slow'][:12]}",
                 "seconds": round(took)})
    found = "exactly the slowing commit" if named == revs["slow"] else "ANOTHER commit"
    notes.append(f"bisect named {found}; {took / max(steps, 1):.0f} s a step (build, boot, "
                 "measure)")
    environment = {"kernel": "good/slowed bzImage (linux 6.1, the lab's config)",
                   "pktgen": None, "machine": "VM lab from the host", "cpu": "",
                   "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "python": sys.version.split()[0], "pytest_pktgen": "0.1.0",
                   "clock": CLOCK[1]}
    entry = {"run": RUN_ID, "section": "10. A known regression: A/B and bisect",
             "title": "a kernel with a known added cost", "rows": rows, "notes": notes,
             "environment": environment, "test": "bench/regression.py"}
    with open(HERE / "results.jsonl", "a") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    for row in rows:
        print(row)
    for note in notes:
        print(note)
    print(run.stdout[-3000:])


if __name__ == "__main__":
    main()
