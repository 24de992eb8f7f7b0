"""The benchmarks' shared parts: a ``record`` fixture that prints a benchmark's figures and
appends them to ``bench/results.jsonl``, and the rendering of ``bench/RESULTS.md``.

Benchmarks measure; they do not gate. Each compares side by side in one run (A/B pairs, one
backend after another on the same topology) so the figures that matter are ratios, which hold
under QEMU's TCG where absolute pps mean little.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
RESULTS = HERE / "results.jsonl"
RUN_ID = os.environ.get("PKTGEN_BENCH_RUN") or time.strftime("%Y%m%dT%H%M%S")


@pytest.fixture(scope="session")
def environment(pktgen_module):
    from pytest_pktgen.lab import vm
    from pytest_pktgen.measurement import report

    return report.environment(pktgen_module, vm.lab_info())


@pytest.fixture
def record(environment, request):
    """``record(section, title, rows, notes)``: print a table of figures and keep it for
    RESULTS.md (rows: a list of dicts, the same keys each)."""

    def keep(section: str, title: str, rows: list[dict], notes: list[str] = ()) -> None:
        entry = {"run": RUN_ID, "section": section, "title": title, "rows": rows,
                 "notes": list(notes), "environment": environment,
                 "test": request.node.nodeid}
        with open(RESULTS, "a") as f:
            f.write(json.dumps(entry) + "\n")
        print(f"\n== {section}: {title}")
        print(render_table(rows))
        for note in notes:
            print(f"   {note}")

    return keep


@pytest.fixture
def ab_pairs():
    """``ab_pairs(runners, a, b, pairs)``: run ``runners[a]`` and ``runners[b]`` (each returns
    pps) side by side ``pairs`` times, alternating which goes first; a row per pair with both
    figures and the ratio a/b."""

    def run(runners: dict, a: str, b: str, pairs: int) -> list[dict]:
        rows = []
        for pair in range(pairs):
            order = (a, b) if pair % 2 == 0 else (b, a)
            pps = {who: runners[who]() for who in order}
            rows.append({"pair": pair + 1, "order": "/".join(order), f"{a}_pps": pps[a],
                         f"{b}_pps": pps[b], "ratio": pps[a] / pps[b]})
        return rows

    return run


def render_table(rows: list[dict]) -> str:
    """A Markdown table of rows (numbers formatted for reading)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def render_results(run_id: str = RUN_ID, path: Path = RESULTS) -> str:
    """RESULTS.md for one run of `make bench` (every session it ran: stock and patched kernel)."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    latest = {}  # a benchmark rerun within the same run replaces its earlier figures
    for e in entries:
        if e["run"] == run_id:
            latest[(e["test"], e["environment"]["kernel"])] = e
    entries = list(latest.values())
    if not entries:
        raise SystemExit(f"no benchmark results for run {run_id} in {path}")
    out = ["# pytest-pktgen benchmarks", "",
           f"Run `{run_id}` of `make bench`. Figures come from one run, side by side; ratios are "
           "the point (absolute pps under QEMU's TCG mean little).", ""]
    kernels = []
    for e in entries:
        env = e["environment"]
        key = (env["kernel"], env.get("pktgen"), env["machine"], env["cpu"])
        if key not in kernels:
            kernels.append(key)
    out.append("## Machine")
    out.append("")
    first = entries[0]["environment"]
    out.append(f"- date: {first['date']}")
    out.append(f"- CPU: {first['cpu']} ({first['cpus']} CPUs); {first['machine']}")
    for kernel, pktgen, machine, _cpu in kernels:
        out.append(f"- kernel {kernel}, pktgen {pktgen} ({machine})")
    out.append(f"- Python {first['python']}, pytest-pktgen {first['pytest_pktgen']}")
    out.append("")
    sections: dict[str, list[dict]] = {}
    for e in entries:
        sections.setdefault(e["section"], []).append(e)
    for section in sorted(sections):
        out.append(f"## {section}")
        out.append("")
        for e in sections[section]:
            out.append(f"### {e['title']} (kernel {e['environment']['kernel']})")
            out.append("")
            out.append(render_table(e["rows"]))
            out.append("")
            for note in e["notes"]:
                out.append(f"- {note}")
            if e["notes"]:
                out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    (HERE / "RESULTS.md").write_text(render_results(sys.argv[1] if len(sys.argv) > 1 else RUN_ID))
    print(f"wrote {HERE / 'RESULTS.md'}")
