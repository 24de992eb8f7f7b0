"""Gates evaluated on rows, pure: thresholds, relative gates, baselines (gates.evaluate)."""

from __future__ import annotations

from dataclasses import replace

from pytest_pktgen.measurement import gates
from pytest_pktgen.measurement.gates import RelativeRequirement, Requirement
from pytest_pktgen.measurement.row import Row

ROW = Row("t.py::test_x[64B]", label="patched", pps=800_000.0, mbps=409.6, offered=1000,
          received=998)
REFERENCE = Row("t.py::test_x[64B]", label="stock", pps=1_000_000.0)


def test_nothing_gates_a_row_without_gates():
    verdict = gates.evaluate(ROW)
    assert verdict == gates.Verdict([], gated=False)


def test_thresholds_name_the_metric_the_bound_and_who_asked():
    verdict = gates.evaluate(ROW, [Requirement("pps", "min", 1e6, "--pktgen-min-pps"),
                                   Requirement("loss_ratio", "max", 0.01, "thresholds.toml")])
    assert verdict.gated and verdict.failures == [
        "pps 800,000 measured, at least 1,000,000 required by --pktgen-min-pps"]


def test_a_relative_gate_compares_with_the_reference_at_the_same_point():
    asked = []

    def reference(label):
        asked.append(label)
        return REFERENCE if label == "stock" else None

    short = gates.evaluate(ROW, relative=[RelativeRequirement("stock", 0.9, "the marker")],
                           reference=reference)
    assert asked == ["stock"] and short.ratio == 0.8 and short.gated
    assert short.failures == ["pps 800,000 is 0.80 x the reference 'stock' (1,000,000 pps, "
                              "t.py::test_x[64B]); at least 0.90 x required by the marker"]
    enough = gates.evaluate(ROW, relative=[RelativeRequirement("stock", 0.75, "the marker")],
                            reference=reference)
    assert enough.failures == [] and enough.ratio == 0.8
    missing = gates.evaluate(ROW, relative=[RelativeRequirement("other", 0.5, "the marker")],
                             reference=reference, where="64B")
    assert missing.ratio is None and missing.failures == [
        "no reference 'other' at 64B point was measured earlier in this session, but the "
        "marker compares with it"]
    itself = gates.evaluate(ROW, relative=[RelativeRequirement("patched", 2.0, "the marker")],
                            reference=reference)
    assert itself.failures == [] and itself.ratio is None  # the reference is not its own


def test_a_baseline_gives_each_metric_s_verdict_and_fails_regressions_only():
    def rounds(*pps, received=998):
        return [{"pps": p, "loss_ratio": (1000 - received) / 1000} for p in pps]

    now = replace(ROW, per_round=rounds(800_000.0, 801_000.0, 799_000.0))
    same = gates.evaluate(now, baseline={ROW.key: {"per_round": rounds(800_500.0, 799_500.0,
                                                                       800_000.0)}},
                          baseline_path="base.json")
    assert (same.baseline, same.failures, same.gated) == ("no change", [], True)
    assert [c.metric.name for c in same.comparisons] == ["pps", "loss_ratio"]
    worse = gates.evaluate(now, baseline={ROW.key: {"per_round": rounds(1e6, 1.01e6, 0.99e6)}},
                           baseline_path="base.json", thresholds={"pps": 0.02})
    assert worse.baseline == "regression" and len(worse.failures) == 1
    assert worse.failures[0].startswith("pps ratio 0.800 (0.7")
    assert worse.failures[0].endswith(": regression at a threshold of 2.0%, 3 rounds against "
                                      "3, against the baseline base.json (--pktgen-threshold)")
    noisy = gates.evaluate(now, baseline={ROW.key: {"per_round": rounds(1e6, 0.6e6, 0.8e6)}},
                           baseline_path="base.json")
    assert (noisy.baseline, noisy.failures) == ("undecided", [])  # no failure, said
    absent = gates.evaluate(ROW, baseline={}, baseline_path="base.json")
    assert (absent.baseline, absent.failures, absent.gated) == ("none", [], True)
