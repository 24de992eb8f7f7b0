"""The pytest surface before anything reaches a kernel: options, markers, sweep ids, gates.

Everything here happens at configure or collection time (or is arithmetic on measured rows),
so it runs on the host; the measurements themselves are tested in the VM lab
(tests/integration/test_measure.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pytest_pktgen import options
from pytest_pktgen.lab.topology import IN_NAMESPACES
from pytest_pktgen.measurement import gates
from pytest_pktgen.measurement.report import Results
from pytest_pktgen.measurement.row import Row


@pytest.mark.parametrize("args, message", [
    (["--pktgen-rx-dev", "eth2"], "*--pktgen-rx-dev eth2 receives what --pktgen-dev sends*"),
    (["--pktgen-dst-mac", "02:00:00:00:00:01"], "*give --pktgen-dev too*"),
    (["--pktgen-dev", "eth1"], "*--pktgen-dev eth1: where do its frames go?*"),
    (["--pktgen-dev", "eth1", "--pktgen-rx-dev", "eth1"], "*are both eth1*"),
    (["--pktgen-dev", "eth1", "--pktgen-rx-dev", "eth2", "--pktgen-dst-mac",
      "02:00:00:00:00:01"], "*give one*"),
    (["--pktgen-dev", "eth1", "--pktgen-dst-mac", "02:00:00:00:00"],
     "*--pktgen-dst-mac '02:00:00:00:00': a MAC address*"),
    (["--pktgen-dev", "eth1", "--pktgen-dst", "198.18.0.9"], "*needs --pktgen-dst-mac*"),
    (["--pktgen-dev", "eth1", "--pktgen-dst-mac", "02:00:00:00:00:01", "--pktgen-dst", "1.2.3"],
     "*--pktgen-dst '1.2.3': an IPv4 address*"),
    (["--pktgen-count", "100", "--pktgen-duration", "2"], "*either a packet count or a number*"),
    (["--pktgen-count", "0"], "*--pktgen-count 0: *count 0 alone sends forever*"),
    (["--pktgen-param", "ratp=100"], "*ratp=100*did you mean 'ratep'*"),
    (["--pktgen-param", "ratep=-1"], "*ratep=-1: a whole number from 1*"),
    (["--pktgen-param", "count=5"], "*use --pktgen-count for count*"),
    (["--pktgen-sizes", "64,32"], "*'32' in '64,32' is not a frame size*"),
    (["--pktgen-sizes", "64,64"], "*names a frame size twice*"),
    (["--pktgen-max-loss", "2"], "*'2' is not a share from 0 to 1*"),
    (["--pktgen-threshold", "speed=5%"], "*METRIC=SHARE with METRIC one of pps, loss_ratio*"),
    (["--pktgen-threshold", "pps=150%"], "*threshold pps=150%*a share from 0 to below 1*"),
    (["--pktgen-confidence", "0.2"], "*'0.2' is not a confidence from 0.5 to below 1*"),
    (["--pktgen-thresholds", "nowhere.toml"], "*--pktgen-thresholds nowhere.toml: no such file*"),
    (["--pktgen-baseline", "nowhere.json"], "*no such file (save one with --pktgen-save-*"),
    (["--pktgen-vm", "--pktgen-dev", "eth1", "--pktgen-rx-dev", "eth2"],
     "*--pktgen-dev eth1 is a device of this host*"),
    (["--pktgen-dev", "eth1@0"], "*'eth1@0' is not an interface name (1-15 chars*"),
    (["--pktgen-dev", "eth1", "--pktgen-rx-dev", "a-sixteen-chars1"],
     "*'a-sixteen-chars1' is not an interface name*"),
    (["--pktgen-allow-dev", "eth 1"], "*'eth 1' is not an interface name*"),
    (["--pktgen-allow-dev", "dut:eth0"], "*--pktgen-allow-dev dut:eth0: there is no "
     "--pktgen-host dut=... (hosts: none)*"),
    (["--pktgen-host", "gen1"], "*'gen1' is not NAME=ssh://*"),
    (["--pktgen-host", "gen1=http://lab"], "*SSH address 'http://lab' is not allowed*"),
    (["--pktgen-host", "1gen=ssh://lab"], "*host name '1gen': a letter, then*"),
    (["--pktgen-host", "g=ssh://a", "--pktgen-host", "g=ssh://b"], "*--pktgen-host g=... is "
     "given twice*"),
    (["--pktgen-dev", "gen:eth1", "--pktgen-rx-dev", "eth2"], "*--pktgen-dev gen:eth1: there "
     "is no --pktgen-host gen=... (hosts: none)*"),
    (["--pktgen-dev", "gen:eth 1"], "*'gen:eth 1' is not an interface name*HOST:IFNAME*"),
    (["--pktgen-latency-every", "2000000"], "*--pktgen-latency-every*'2000000': auto, or a "
     "latency sample of one sequence number in N: 0 (none), 1 (every one) to 1048576*"),
    (["--pktgen-vm", "--pktgen-host", "g=ssh://a"], "*--pktgen-vm runs in a VM without a "
     "network to other machines*"),
    (["--pktgen-host", "g=ssh://a", "--pktgen-ssh-config", "nowhere.conf"],
     "*--pktgen-ssh-config nowhere.conf: no such file*"),
])
def test_contradictions_are_usage_errors(pytester, args, message):
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_bad_ini_value_names_its_key(pytester):
    pytester.makeini("[pytest]\npktgen_sizes = 64,abc\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini key pktgen_sizes = '64,abc'*not a frame size*"])


def test_every_option_has_help_with_its_ini_key_and_default(pytester):
    out = pytester.runpytest("--help").stdout.str()
    flat = " ".join(out.split())
    for opt in options.OPTIONS:
        assert opt.flag in out, opt.flag
        assert f"(ini: {opt.name}; default:" in flat, opt.name


def test_markers_are_registered(pytester):
    out = pytester.runpytest("--markers").stdout.str()
    for marker in ("pktgen(", "pktgen_sweep(", "pktgen_gate(", "integration:"):
        assert f"@pytest.mark.{marker}" in out, marker
    pytester.makepyfile("""
        import pytest

        @pytest.mark.pktgen(frame=128)
        @pytest.mark.pktgen_gate(min_pps=1)
        def test_marked():
            pass
    """)
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_fixtures_of_the_surface_are_documented(pytester):
    out = pytester.runpytest("--fixtures").stdout.str()
    for name in ("pktgen_bench", "pktgen_dut", "pktgen_point", "pktgen_settings", "rx_counter",
                 "sniffer", "pgrx", "crossover", *IN_NAMESPACES):
        assert f"\n{name} -- " in out or f"\n{name} [session scope] -- " in out, name


SWEEPS = """
import pytest

@pytest.mark.pktgen_sweep(clone_skb=[0, 1000], flows=[0, 8192])
def test_table(pktgen_point):
    pass

@pytest.mark.pktgen(frame=128)
@pytest.mark.pktgen_sweep(threads=[1, 2], ratep=[1000, 20000])
def test_fixed_frame(pktgen_point):
    pass

@pytest.mark.pktgen_sweep(frame=[64, 1500])
def test_point_values(pktgen_point):
    assert pktgen_point.pkt_size == pktgen_point.frame - 4

@pytest.mark.pktgen_sweep(imix=["simple", [(128, 1), (1518, 3)]])
def test_imix(pktgen_point):
    assert pktgen_point.frame == min(frame for frame, _ in pktgen_point.imix)
    weights = pktgen_point.params()["imix_weights"]
    assert weights in ([(60, 7), (590, 4), (1514, 1)], [(124, 1), (1514, 3)])
"""


def test_sweep_ids_name_the_swept_axes(pytester):
    pytester.makepyfile(SWEEPS)
    result = pytester.runpytest("--collect-only", "-q", "--pktgen-sizes", "64,1500")
    result.stdout.fnmatch_lines([
        "*test_table[[]64B-clone0-flows0]", "*test_table[[]64B-clone0-flows8192]",
        "*test_table[[]64B-clone1000-flows0]", "*test_table[[]1500B-clone1000-flows8192]",
        "*test_fixed_frame[[]1thr-ratep1000]", "*test_fixed_frame[[]2thr-ratep20000]",
        "*test_point_values[[]64B]", "*test_point_values[[]1500B]",
        "*test_imix[[]imix-simple]", "*test_imix[[]imix128x1+1518x3]",
        "16 tests collected*",
    ])


def test_sweep_frames_default_to_the_sizes_option(pytester):
    pytester.makepyfile(SWEEPS)
    result = pytester.runpytest("--collect-only", "-q", "-k", "test_table")
    assert result.stdout.str().count("test_table[") == 7 * 4  # the paper's 7 sizes x 2 x 2
    pytester.runpytest("-k", "test_point_values").assert_outcomes(passed=2)
    # an IMIX sends its own sizes: no frame axis added to it
    pytester.runpytest("-k", "test_imix").assert_outcomes(passed=2)


@pytest.mark.parametrize("marker, message", [
    ("pktgen_sweep(frame=[63, 64])", "*'frame': 63 is not allowed; a frame size in bytes*"),
    ("pktgen_sweep(pkt_size=[60])", "*'pkt_size'*frame=... instead*"),
    ("pktgen_sweep(clone_skb=[0, -1])", "*'clone_skb': -1 is not allowed*"),
    ("pktgen_sweep(flows=[])", "*pktgen_sweep(flows=...) takes a non-empty list*"),
    ("pktgen_sweep(flows=[8, 64512])", "*'flows': 64512 is not allowed; a number of flows, 0 "
     "(off) to 64511: flows are UDP source ports from 1024*"),
    ("pktgen_sweep(ratep=[5, 5])", "*names a value twice*"),
    ("pktgen_sweep(clonesk=[1])", "*'clonesk'*did you mean 'clone_skb'*"),
    ("pktgen_sweep([64])", "*pktgen_sweep takes keyword lists only*"),
    ("pktgen_sweep(imix=['simpel'])", "*'imix': 'simpel' is not allowed; a profile ('simple') "
     "or 1 to 20 (frame, weight) pairs, frames 64 to 65539 bytes with the FCS*"),
    ("pktgen_sweep(imix=[[(60, 1)]])", "*'imix': *60, 1* is not allowed*"),
    ("pktgen_sweep(imix=[[(64, 0)]])", "*'imix': *64, 0* is not allowed*weights 1 or more*"),
    ("pktgen_sweep(imix=[[(64, 1), (64, 2)]])", "*each frame size once*"),
    ("pktgen_sweep(imix_weights=['60,1'])", "*'imix_weights'*imix=... instead*"),
    ("pktgen_sweep(imix=['simple'], frame=[64])", "*frame and imix both: an IMIX sends its "
     "own frame sizes*"),
])
def test_bad_sweeps_fail_at_collection_with_a_sentence(pytester, marker, message):
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.{marker}
        def test_bad(pktgen_point):
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()
    assert "sweep.py" not in result.stdout.str()


def test_sweep_without_a_measurement_is_refused(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.pktgen_sweep(frame=[64])
        def test_nothing():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*pktgen_sweep needs the test to use pktgen_bench or "
                                 "pktgen_search*"])


def test_marker_settings_win_over_options(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.pktgen(duration=2.5, rounds=5, ratep=1000, clone_skb=10)
        def test_marker(pktgen_settings, pktgen_point):
            assert pktgen_settings.count == 0 and pktgen_settings.duration == 2.5
            assert pktgen_settings.rounds == 5
            assert pktgen_settings.params == {"ratep": 1000, "burst": "4"}
            assert pktgen_point.clone_skb == 10 and pktgen_point.id == ""
            assert pktgen_settings.latency_every == 8  # the option's

        @pytest.mark.pktgen(latency_every=1)
        def test_every_packet(pktgen_settings):
            assert pktgen_settings.latency_every == 1

        @pytest.mark.pktgen(latency_every="often")
        def test_sometimes(pktgen_settings):
            pass

        def test_options(pktgen_settings, pktgen_point):
            assert pktgen_settings.count == 5000 and pktgen_settings.duration is None
            assert pktgen_settings.rounds == 2 and pktgen_settings.params == {"burst": "4"}
            assert pktgen_point.frame == 128 and pktgen_point.clone_skb == 3

        @pytest.mark.pktgen(count=0)
        def test_endless(pktgen_settings):
            pass
    """)
    result = pytester.runpytest("--pktgen-count", "5000", "--pktgen-repeats", "2",
                                "--pktgen-param", "burst=4", "--pktgen-sizes", "128,256",
                                "--pktgen-clone-skb", "3", "--pktgen-latency-every", "8")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*test_endless: count 0: *count 0 together with a duration*"])
    result.stdout.fnmatch_lines(["*test_sometimes: latency_every 'often': auto, or a latency "
                                 "sample of one sequence number in N: 0 (none), 1 (every one) "
                                 "to 1048576*"])


# --- gates: arithmetic on measured rows ----------------------------------------------------

def test_requirement_messages_say_measured_required_and_source():
    req = gates.Requirement("pps", "min", 1e6, "--pktgen-min-pps")
    assert req.failure(2e6) is None
    assert req.failure(812345.0) == ("pps 812,345 measured, at least 1,000,000 required by "
                                     "--pktgen-min-pps")
    loss = gates.Requirement("loss_ratio", "max", 0.001, "t.toml [defaults]")
    assert loss.failure(0.0005) is None
    assert loss.failure(0.02) == "loss_ratio 2.0000% measured, at most 0.1000% required by " \
                                 "t.toml [defaults]"
    assert gates.check(Row("t", pps=1.0), [loss]) == [
        "loss_ratio was not measured (no receive counter?), but t.toml [defaults] requires it"]


def test_thresholds_file_sections_apply_by_frame_and_test_name(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[defaults]\nmax_loss = 0.01\n[frames.64]\nmin_pps = 5e5\n'
                    '[tests."test_sweep[1500B*"]\nmin_mbps = 900\n')
    th = gates.Thresholds.load(str(path))
    assert [(r.metric, r.value) for r in th.for_test("test_sweep[64B-clone0]", 64)] == [
        ("loss_ratio", 0.01), ("pps", 5e5)]
    assert [(r.metric, r.source.split(" ", 1)[1]) for r in th.for_test("test_sweep[1500B]",
                                                                        1500)] == [
        ("loss_ratio", "[defaults]"), ("mbps", '[tests."test_sweep[1500B*"]')]


@pytest.mark.parametrize("text, message", [
    ("[defaults]\nmin_ppps = 5\n", "'min_ppps' is not a threshold"),
    ("[defaults]\nmax_loss = 3\n", "max_loss = 3 is not a share from 0 to 1"),
    ("[frame.64]\nmin_pps = 5\n", "unknown section(s) ['frame']"),
    ("[frames.big]\nmin_pps = 5\n", "[frames.big]: a frame size in bytes"),
    ("min_pps = \n", "not TOML"),
])
def test_bad_thresholds_files_are_usage_errors(tmp_path, text, message):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(pytest.UsageError, match=".*" + __import__("re").escape(message)):
        gates.Thresholds.load(str(path))


def test_a_baseline_is_the_session_s_results_document_with_every_round(tmp_path):
    rounds = [{"pps": 1000.0 + n, "loss_ratio": 0.01} for n in range(3)]
    rows = [Row("t.py::test_a[64B]", pps=1001.0, mbps=10.0, offered=3000, received=2970,
                per_round=rounds)]
    path = Results(environment={"kernel": "x"}, rows=rows).save(tmp_path / "base.json")
    base = gates.load_baseline(str(path))
    assert base.environment == {"kernel": "x"} and base.searches == {}
    assert base.rows["t.py::test_a[64B]"]["per_round"] == rounds
    found, regressions, comparisons = gates.compare_baseline(
        replace(rows[0], per_round=[{**r, "pps": r["pps"] * 0.8} for r in rounds]),
        base.rows, "base.json", {"pps": 0.05, "loss_ratio": 0.001})
    assert found and [c.verdict for c in comparisons] == ["regression", "no change"]
    assert regressions == [comparisons[0].line() + ", against the baseline base.json "
                           "(--pktgen-threshold)"]
    assert gates.compare_baseline(replace(rows[0], test="t.py::test_b"), base.rows, "b",
                                  {}) == (False, [], [])


def test_a_version_1_baseline_is_refused_with_what_to_do(tmp_path):
    old = tmp_path / "old.json"
    old.write_text('{"version": 1, "results": {"t.py::x": {"pps": 1.0}}}')
    with pytest.raises(pytest.UsageError, match=r"--pktgen-baseline .*old.json: version 1, "
                       r"this pytest-pktgen reads version 2 .*medians only.*save it"):
        gates.load_baseline(str(old))


SEARCHES = """
import pytest

@pytest.mark.pktgen_sweep(frame=[64, 1500])
@pytest.mark.pktgen_search(loss_ratios=[0.0, 0.01], min_load=2000)
def test_table(request, pktgen_point):
    from pytest_pktgen import sweep
    marker = request.node.get_closest_marker("pktgen_search")
    s = sweep.search_settings_for(request.config, marker.kwargs, "here", relative_width=0.02)
    print("SETTINGS", pktgen_point.frame, s.loss_ratios, s.relative_width, s.min_load,
          s.trial_duration, s.max_load)

@pytest.mark.pktgen_search(loss_ratios=[0.0, 0.0])
def test_twice(request, pktgen_search):
    pktgen_search(None)

@pytest.mark.pktgen_search(relative_widht=0.01)
def test_typo(request, pktgen_search):
    pktgen_search(None)
"""


def test_search_settings_come_from_call_marker_and_options_in_that_order(pytester):
    pytester.makepyfile(SEARCHES)
    result = pytester.runpytest("-s", "-p", "no:cacheprovider", "--pktgen-trial-duration=0.5",
                                "--pktgen-min-load=500", "-k", "table")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*SETTINGS 64 (0.0, 0.01) 0.02 2000 0.5 None",
                                 "*SETTINGS 1500 (0.0, 0.01) 0.02 2000 0.5 None"])


def test_bad_search_settings_fail_before_any_trial_with_a_sentence(pytester):
    pytester.makepyfile(SEARCHES)
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "twice or typo")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*test_twice: pktgen_search loss_ratios (0.0, 0.0): one loss ratio or more, each "
        "once, from 0 to below 1",
        "*test_typo: pktgen_search marker: relative_widht: not a search setting; one of "
        "loss_ratios, relative_width, *"])
    bad = pytester.runpytest("-p", "no:cacheprovider", "--pktgen-loss-ratios=0,1.5", "-k", "x")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--pktgen-loss-ratios*1.5*"])


def test_an_allowance_applies_on_the_machine_it_names():
    """--pktgen-allow-dev gen1:eth0 allows gen1's eth0 only; a bare eth0 this machine's only."""
    from pytest_pktgen.run.guard import allowed_on

    allow = ("eth0", "gen1:eth1", "dut:eth0")
    assert allowed_on(allow, None) == ("eth0",)
    assert allowed_on(allow, "gen1") == ("eth1",)
    assert allowed_on(allow, "dut") == ("eth0",)
    assert allowed_on(allow, "other") == ()
