"""Loading the scoring libraries on a background thread (ml.preload)."""

from __future__ import annotations

import sys

from kobe_pipelines.ml import preload


def test_preload_when_started_then_waited_for_then_its_modules_are_imported(monkeypatch):
    monkeypatch.setattr(preload, "_thread", None)
    monkeypatch.delitem(sys.modules, "kobe_pipelines.ml.metrics", raising=False)
    preload.start(("kobe_pipelines.ml.metrics",))
    preload.wait()
    assert "kobe_pipelines.ml.metrics" in sys.modules
    assert not preload._thread.is_alive()


def test_preload_when_started_twice_then_one_thread_loads(monkeypatch):
    monkeypatch.setattr(preload, "_thread", None)
    preload.start(("json",))
    first = preload._thread
    preload.start(("json",))
    assert preload._thread is first
    preload.wait()


def test_preload_when_a_module_fails_to_import_then_the_thread_ends_quietly_and_the_next_are_not_tried(monkeypatch):
    # the step's own import raises the error again, with its traceback
    monkeypatch.setattr(preload, "_thread", None)
    monkeypatch.delitem(sys.modules, "kobe_pipelines.ml.validation", raising=False)
    preload.start(("kobe_pipelines.ml.no_such_module", "kobe_pipelines.ml.validation"))
    preload.wait()
    assert "kobe_pipelines.ml.validation" not in sys.modules


def test_preload_wait_when_nothing_was_started_then_it_returns_at_once(monkeypatch):
    monkeypatch.setattr(preload, "_thread", None)
    preload.wait()
    assert preload._thread is None
