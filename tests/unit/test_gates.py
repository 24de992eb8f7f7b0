"""Gates evaluated on rows, pure: thresholds, relative gates, baselines (gates.evaluate)."""

from __future__ import annotations

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


def test_a_baseline_says_ok_regressed_or_none():
    key = ROW.key
    tolerance = {"pps": 0.10, "mbps": 0.10, "loss_ratio": 0.001}
    ok = gates.evaluate(ROW, baseline={key: {"pps": 850_000.0, "loss_ratio": 0.002}},
                        baseline_path="base.json", tolerance=tolerance)
    assert (ok.baseline, ok.failures, ok.gated) == ("ok", [], True)
    worse = gates.evaluate(ROW, baseline={key: {"pps": 1_000_000.0}},
                           baseline_path="base.json", tolerance=tolerance)
    assert worse.baseline == "regressed"
    assert worse.failures == ["pps 800,000 is 20.0% below the baseline 1,000,000 in base.json "
                              "(tolerance 10.0% from --pktgen-tolerance)"]
    absent = gates.evaluate(ROW, baseline={}, baseline_path="base.json", tolerance=tolerance)
    assert (absent.baseline, absent.failures, absent.gated) == ("none", [], True)
