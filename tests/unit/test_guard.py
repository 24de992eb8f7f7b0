"""The module's users: the last session out unloads pktgen, and only if one of ours loaded it
(flock semantics, checked on the host with two users in one process: each has its own open
file, as two sessions do)."""

from __future__ import annotations

from pytest_pktgen.run import guard


def _use(tmp_path, monkeypatch):
    monkeypatch.setattr(guard, "LOCK_DIR", tmp_path)
    monkeypatch.setattr(guard.ModuleUse, "LOCK", tmp_path / "module.lock")
    monkeypatch.setattr(guard.ModuleUse, "MARK", tmp_path / "module-loaded-by-pytest-pktgen")


def test_the_last_session_out_unloads_what_ours_loaded(tmp_path, monkeypatch):
    _use(tmp_path, monkeypatch)
    unloads = []
    first, second = guard.ModuleUse(), guard.ModuleUse()
    first.loaded_it()
    assert not first.release(lambda: unloads.append("first"))  # the second still uses it
    assert unloads == []
    third = guard.ModuleUse()
    assert not second.release(lambda: unloads.append("second"))
    assert third.release(lambda: unloads.append("third"))  # the last one out
    assert unloads == ["third"] and not guard.ModuleUse.MARK.exists()
    assert not third.release(lambda: unloads.append("again"))  # idempotent


def test_a_module_loaded_before_us_stays_loaded(tmp_path, monkeypatch):
    _use(tmp_path, monkeypatch)
    unloads = []
    assert not guard.ModuleUse().release(lambda: unloads.append("unloaded"))
    assert unloads == []
