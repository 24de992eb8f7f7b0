"""The pytest surface that needs no kernel: xfail for unsupported devices, fixture docs."""

from __future__ import annotations


def test_device_unsupported_is_reported_as_xfail(pytester):
    pytester.makepyfile("""
        from pytest_pktgen.errors import DeviceUnsupported

        def test_point():
            raise DeviceUnsupported("pgv0 has no shared-skb support: clone_skb must be 0")

        def test_other_errors_still_fail():
            raise RuntimeError("boom")
    """)
    result = pytester.runpytest("-rxf")
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*XFAIL*not applicable to this device: pgv0 has no shared-skb*"])


def test_fixtures_are_documented(pytester):
    result = pytester.runpytest("--fixtures")
    out = result.stdout.str()
    for name in ("pktgen_module", "pktgen", "lab", "lab_nic_pairs", "veth", "dummy",
                 "crossover", "forwarding", "forwarding_parallel", "irq_pin"):
        assert f"\n{name} " in out or f"\n{name}\n" in out or f"{name} -- " in out, name
