"""Loading one strategy file into a fresh module, and calling strategy code under a time limit.

A strategy file is trusted code run in-process (it is the user's own folder, not a sandbox);
what this module guards against is honest mistakes: a syntax error, a failing import, a
missing interface, an exception or a hang in `generate`.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from kobe_pipelines.errors import KobeError
from kobe_pipelines.strategies.base import Strategy

T = TypeVar("T")

MODULE_PREFIX = "kobe_user_strategy"
_counter = itertools.count(1)


class StrategyLoadError(KobeError):
    """A strategy file or run failed at `stage` (read, import, interface, dry_run, timeout)."""

    def __init__(self, stage: str, problem: str, detail: str = ""):
        self.stage = stage
        self.problem = problem
        self.detail = detail
        super().__init__(f"{stage}: {problem}")


@dataclass(frozen=True)
class LoadedModule:
    module: ModuleType
    strategy: Any


def unique_module_name(name: str, version: str) -> str:
    return f"{MODULE_PREFIX}_{name}_{version}_{next(_counter)}"


def load_strategy_source(path: Path, source: bytes, name: str, module_name: str) -> LoadedModule:
    """Execute `source` (the bytes read from `path`) as a fresh module and find its strategy.

    The module is in `sys.modules` only while it executes and, on success, afterwards (its
    classes need it there); on any failure it is removed. The strategy is the module-level
    `STRATEGY` object, else the single non-abstract `Strategy` subclass defined in the file
    (instantiated with no arguments). It must have `name == name` (the file's stem) and a
    callable `generate`.
    """
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:
        raise StrategyLoadError("import", f"cannot make a module spec for {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        try:
            code = compile(source, str(path), "exec", dont_inherit=True)
            exec(code, module.__dict__)  # noqa: S102 - the user's own strategy file, by design
        except (Exception, SystemExit) as exc:
            raise StrategyLoadError("import", _one_line(exc), _trace(exc)) from exc
        strategy = _find_strategy(module, module_name)
        _check_interface(strategy, name)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return LoadedModule(module, strategy)


def _find_strategy(module: ModuleType, module_name: str) -> Any:
    if hasattr(module, "STRATEGY"):
        return module.STRATEGY
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Strategy) and obj.__module__ == module_name and not inspect.isabstract(obj)
    ]
    if not classes:
        raise StrategyLoadError("interface", "defines no STRATEGY object and no Strategy subclass")
    if len(classes) > 1:
        names = ", ".join(sorted(c.__name__ for c in classes))
        raise StrategyLoadError("interface", f"defines several Strategy subclasses ({names}); set STRATEGY to the one to run")
    try:
        return classes[0]()
    except Exception as exc:
        raise StrategyLoadError("interface", f"{classes[0].__name__}() failed: {_one_line(exc)}", _trace(exc)) from exc


def _check_interface(strategy: Any, name: str) -> None:
    declared = getattr(strategy, "name", None)
    if not isinstance(declared, str) or not declared:
        raise StrategyLoadError("interface", "the strategy has no string attribute 'name'")
    if declared != name:
        raise StrategyLoadError("interface", f"the strategy's name {declared!r} differs from its file name {name + '.py'!r}")
    if not callable(getattr(strategy, "generate", None)):
        raise StrategyLoadError("interface", "the strategy has no callable 'generate(ctx)'")


def call_with_time_limit(fn: Callable[[], T], time_limit_s: float | None, what: str) -> T:
    """`fn()` in a daemon thread; raise `StrategyLoadError` on an exception or after `time_limit_s`.

    Python cannot stop a thread: a call that overruns keeps running in the background (as a
    daemon it never blocks exit), but its result is discarded and the caller moves on.
    """
    if time_limit_s is None:
        try:
            return fn()
        except Exception as exc:
            raise StrategyLoadError(what, f"raised {_one_line(exc)}", _trace(exc)) from exc
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"kobe-{what}", daemon=True)
    worker.start()
    worker.join(time_limit_s)
    if worker.is_alive():
        raise StrategyLoadError("timeout", f"{what} did not finish within {time_limit_s:g} s")
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        raise StrategyLoadError(what, f"raised {_one_line(exc)}", _trace(exc)) from exc
    return box["result"]


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _trace(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-8))
