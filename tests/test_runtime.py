"""runtime.preload: a module imported on a background thread while the caller works, and handed over
with whatever its import raised."""

from __future__ import annotations

import sys
import threading

import pytest

from gexhistory.runtime import preload


def test_preload_imports_on_another_thread(tmp_path, monkeypatch):
    (tmp_path / "slow_mod.py").write_text("import threading, time\ntime.sleep(0.2)\nLOADER = threading.current_thread().name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    wait = preload("slow_mod")
    try:
        assert threading.current_thread().name != "preload slow_mod"
        mod = wait()
        assert mod.LOADER == "preload slow_mod"  # not this thread: the caller was free meanwhile
        assert sys.modules["slow_mod"] is mod
    finally:
        sys.modules.pop("slow_mod", None)


def test_preload_hands_over_the_import_error(tmp_path, monkeypatch):
    (tmp_path / "broken_mod.py").write_text("import no_such_dependency_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    wait = preload("broken_mod")
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_here"):
        wait()
    assert preload("broken_mod")(quiet=True) is None  # a caller already failing keeps its own error


def test_preload_imports_the_others_after_the_first_on_the_same_thread(tmp_path, monkeypatch):
    (tmp_path / "first_mod.py").write_text("import threading\nLOADER = threading.current_thread().name\n")
    (tmp_path / "second_mod.py").write_text("import sys, threading\nLOADER = threading.current_thread().name\n"
                                            "AFTER_FIRST = 'first_mod' in sys.modules\n")
    (tmp_path / "third_mod.py").write_text("raise ImportError('third is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        mod = preload("first_mod", "second_mod")()
        assert mod is sys.modules["first_mod"] and mod.LOADER == "preload first_mod"
        second = sys.modules["second_mod"]
        assert second.LOADER == "preload first_mod" and second.AFTER_FIRST
        with pytest.raises(ImportError, match="third is broken"):
            preload("first_mod", "third_mod")()
    finally:
        for name in ("first_mod", "second_mod", "third_mod"):
            sys.modules.pop(name, None)
