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
