"""Strategy hot-reload: an edited strategy file is picked up by the next trading run, if it works.

`StrategyRegistry` serves the built-in strategies plus one strategy per ``*.py`` file in the
users' folder (given by the settings layer, `KOBE_STRATEGY_DIR`; files starting with ``_`` are ignored). A file's strategy
is named after the file (``momo.py`` -> ``"momo"``) and its version is the first 12 hex digits
of the sha256 of the file's bytes, so the version names exactly the code that ran.

On every `get(name, ctx)` (once per trading run) the file is read and hashed; content decides,
not mtime, so an edit inside one mtime tick is still seen. A changed file is executed into a
fresh module with a unique name, its interface checked, and `generate` dry-run on the run's
own context under a time limit; it must return well-formed intents (`validate_intents`)
stamped with the new version. Only then does it replace the running version. Any failure
(syntax or import error, missing interface, an exception, a time-out, malformed intents) keeps
the last good version, records `last_error(name)` and calls `alert(subject, body)`, once per
broken content and trading date. No restart is needed; nothing here imports Dagster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kobe_pipelines.errors import KobeError
from kobe_pipelines.fsutil import atomic_write_bytes
from kobe_pipelines.orders import OrderIntent
from kobe_pipelines.strategies import ranked_long
from kobe_pipelines.strategies.base import RejectedIntent, validate_intents
from kobe_pipelines.strategies.context import StrategyContext
from kobe_pipelines.strategies.loader import StrategyLoadError, call_with_time_limit, load_strategy_source, unique_module_name

logger = logging.getLogger(__name__)

VERSION_LEN = 12
DEFAULT_TIME_LIMIT_S = 30.0
_SHOWN_REJECTIONS = 5
MAX_SUBJECT = 200  # one line, as the alerts module accepts

Alert = Callable[[str, str], None]
"""alert(subject, body): one line and free text."""


class UnknownStrategyError(KobeError, LookupError):
    """No built-in strategy and no file in the strategy folder has this name."""


class StrategyUnavailableError(KobeError):
    """The strategy's file exists but no version of it has ever passed validation."""

    def __init__(self, name: str, failure: "ReloadFailure"):
        self.name = name
        self.failure = failure
        super().__init__(f"strategy {name!r} has no good version: {failure.stage}: {failure.reason}")


def version_of(source: bytes) -> str:
    """A strategy version: the first 12 hex digits of the sha256 of the source file's bytes."""
    return hashlib.sha256(source).hexdigest()[:VERSION_LEN]


@dataclass(frozen=True)
class ReloadFailure:
    """Why a strategy file was not (re)loaded. `kept_version` is what still runs (None: nothing)."""

    name: str
    path: Path
    attempted_version: str
    stage: str  # read, import, interface, dry_run, timeout, name
    reason: str
    trading_date: str
    at: datetime
    kept_version: str | None
    detail: str = field(default="", repr=False)


@dataclass(frozen=True)
class StrategyRun:
    """What one real run of a strategy produced: intents fit for the gate, rejections, or an error."""

    strategy: str
    version: str
    intents: tuple[OrderIntent, ...]
    rejected: tuple[RejectedIntent, ...]
    error: str | None = None


@dataclass(frozen=True, eq=False)
class LoadedStrategy:
    """A validated strategy and the version that made it; the registry hands these out."""

    name: str
    version: str
    strategy: Any
    source_path: Path
    builtin: bool
    loaded_at: datetime
    module_name: str | None = None
    time_limit_s: float | None = DEFAULT_TIME_LIMIT_S

    def generate(self, ctx: StrategyContext) -> list[OrderIntent]:
        """The raw intents for `ctx`, run as this version (may raise; prefer `run`)."""
        return list(self.strategy.generate(ctx.with_version(self.version)))

    def run(self, ctx: StrategyContext) -> StrategyRun:
        """Generate under the time limit and validate; never raises for the strategy's faults.

        An exception, a time-out or a result that is not a list of intents gives a run with
        `error` set and no intents (nothing is sent); malformed intents are in `rejected`.
        """
        versioned = ctx.with_version(self.version)
        try:
            result = call_with_time_limit(lambda: self.strategy.generate(versioned), self.time_limit_s, "generate")
            intents = [_with_lineage(intent, versioned) for intent in _as_list(result)]
        except StrategyLoadError as exc:
            logger.error("strategy %s %s failed: %s", self.name, self.version, exc)
            return StrategyRun(self.name, self.version, (), (), str(exc))
        good, rejected = validate_intents(intents, versioned, strategy=self.name)
        return StrategyRun(self.name, self.version, tuple(good), tuple(rejected))


def _with_lineage(intent: Any, ctx: StrategyContext) -> Any:
    """An intent without a lineage gets the run's (the signals' provenance is the run's, not the
    strategy's to state); one that states another is left for the validator to reject."""
    if isinstance(intent, OrderIntent) and intent.lineage is None and ctx.lineage is not None:
        return dataclasses.replace(intent, lineage=ctx.lineage_for(intent.symbol))
    return intent


def _as_list(result: Any) -> list[Any]:
    if not isinstance(result, (list, tuple)):
        raise StrategyLoadError("generate", f"returned {type(result).__name__}, not a list of OrderIntent")
    return list(result)


def _builtin_entries() -> dict[str, tuple[Callable[[], Any], Path]]:
    return {"ranked_long": (ranked_long.RankedLong, Path(ranked_long.__file__))}


class StrategyRegistry:
    """Built-in strategies plus the user's strategy files, each served as its last good version.

    `strategy_dir`: the users' folder (None: built-ins only). `alert(subject, body)`: called on
    a rejected edit (its own failures are logged, never raised). `builtins`: name -> (factory,
    source file), default the shipped strategies; their version is the hash of that file when
    the registry is made. `time_limit_s`: limit on a dry run and on `LoadedStrategy.run`.
    """

    def __init__(
        self,
        strategy_dir: Path | None = None,
        alert: Alert | None = None,
        *,
        builtins: Mapping[str, tuple[Callable[[], Any], Path]] | None = None,
        time_limit_s: float | None = DEFAULT_TIME_LIMIT_S,
        keep_dir: Path | None = None,
    ):
        self._dir = Path(strategy_dir) if strategy_dir is not None else None
        # keep_dir: where the last good source of each user strategy is kept, so that a new
        # process (each Dagster run is one) still serves it when the file has a broken edit.
        self._keep_dir = Path(keep_dir) if keep_dir is not None else None
        self._alert = alert
        self._time_limit_s = time_limit_s
        self._lock = threading.RLock()
        self._loaded: dict[str, LoadedStrategy] = {}
        self._hashes: dict[str, str] = {}  # name -> full sha256 of the running file version
        self._errors: dict[str, ReloadFailure] = {}
        self._failed: dict[str, tuple[str, str]] = {}  # name -> (sha256, trading_date) already alerted
        now = datetime.now(UTC)
        for name, (factory, source) in (builtins if builtins is not None else _builtin_entries()).items():
            strategy = factory()
            self._loaded[name] = LoadedStrategy(
                name, version_of(Path(source).read_bytes()), strategy, Path(source), True, now, None, time_limit_s
            )
        self._builtin_names = frozenset(self._loaded)

    @property
    def strategy_dir(self) -> Path | None:
        return self._dir

    def names(self) -> list[str]:
        """Built-in names plus the stems of ``*.py`` files in the folder (not starting with ``_``), sorted."""
        return sorted(self._builtin_names | set(self._user_files()))

    def last_error(self, name: str) -> ReloadFailure | None:
        """The latest failed load of `name` since its last successful one, or None."""
        with self._lock:
            return self._errors.get(name)

    def current_version(self, name: str) -> str | None:
        """The version `get` last served for `name` (None before its first successful load)."""
        with self._lock:
            loaded = self._loaded.get(name)
            return loaded.version if loaded is not None else None

    def get(self, name: str, ctx: StrategyContext) -> tuple[LoadedStrategy, str]:
        """The strategy to run for `ctx` and its version, reloading its file first if it changed.

        `ctx` is the trading run's context: a changed file is dry-run on it before it may
        replace the running version. Raises `UnknownStrategyError` for an unknown name (or a
        deleted file) and `StrategyUnavailableError` when the file never loaded cleanly.
        """
        with self._lock:
            if name in self._builtin_names:
                self._reject_shadowing_file(name, ctx)
                loaded = self._loaded[name]
                return loaded, loaded.version
            path = self._path_for(name)
            if path is None:
                self._forget(name)
                raise UnknownStrategyError(f"no strategy named {name!r} (built-ins: {sorted(self._builtin_names)}; folder: {self._dir})")
            try:
                source = path.read_bytes()
            except OSError as exc:
                return self._keep(name, path, "", "read", f"cannot read the file: {exc}", ctx)
            digest = hashlib.sha256(source).hexdigest()
            if name not in self._loaded:
                self._restore_kept(name)
            current = self._loaded.get(name)
            if current is not None and self._hashes.get(name) == digest:
                return current, current.version
            if self._failed.get(name) == (digest, ctx.trading_date):
                return self._serve_kept(name)
            return self._reload(name, path, source, digest, ctx)

    def close(self) -> None:
        """Drop every loaded user module from `sys.modules` (built-ins stay served)."""
        with self._lock:
            for name in [n for n in self._loaded if n not in self._builtin_names]:
                self._forget(name)

    # -- internals -------------------------------------------------------------------------

    def _user_files(self) -> dict[str, Path]:
        if self._dir is None or not self._dir.is_dir():
            return {}
        return {p.stem: p for p in sorted(self._dir.glob("*.py")) if not p.name.startswith("_") and p.stem.isidentifier()}

    def _path_for(self, name: str) -> Path | None:
        # isidentifier() keeps names like "../x" or "a.b" from reaching the file system.
        if self._dir is None or not name.isidentifier() or name.startswith("_"):
            return None
        path = self._dir / f"{name}.py"
        return path if path.is_file() else None

    def _reload(self, name: str, path: Path, source: bytes, digest: str, ctx: StrategyContext) -> tuple[LoadedStrategy, str]:
        version = digest[:VERSION_LEN]
        module_name = unique_module_name(name, version)
        try:
            loaded_module = load_strategy_source(path, source, name, module_name)
        except StrategyLoadError as exc:
            return self._keep(name, path, version, exc.stage, exc.problem, ctx, exc.detail, digest)
        candidate = LoadedStrategy(
            name, version, loaded_module.strategy, path, False, datetime.now(UTC), module_name, self._time_limit_s
        )
        problem = self._dry_run(candidate, ctx)
        if problem is not None:
            sys.modules.pop(module_name, None)
            stage, reason, detail = problem
            return self._keep(name, path, version, stage, reason, ctx, detail, digest)
        previous = self._loaded.get(name)
        if previous is not None and previous.module_name:
            sys.modules.pop(previous.module_name, None)
        self._loaded[name] = candidate
        self._hashes[name] = digest
        self._store_kept(name, source)
        self._errors.pop(name, None)
        self._failed.pop(name, None)
        logger.info("strategy %s: loaded version %s from %s", name, version, path)
        return candidate, version

    def _dry_run(self, candidate: LoadedStrategy, ctx: StrategyContext) -> tuple[str, str, str] | None:
        versioned = ctx.with_version(candidate.version)
        try:
            result = call_with_time_limit(lambda: candidate.strategy.generate(versioned), self._time_limit_s, "dry_run")
            intents = [_with_lineage(intent, versioned) for intent in _as_list(result)]
        except StrategyLoadError as exc:
            return ("dry_run" if exc.stage == "generate" else exc.stage), exc.problem, exc.detail
        _good, rejected = validate_intents(intents, versioned, strategy=candidate.name)
        if not rejected:
            return None
        shown = "; ".join(r.describe() for r in rejected[:_SHOWN_REJECTIONS])
        more = f" (and {len(rejected) - _SHOWN_REJECTIONS} more)" if len(rejected) > _SHOWN_REJECTIONS else ""
        return "dry_run", f"{len(rejected)} malformed intent(s) of {len(intents)}: {shown}{more}", ""

    def _keep(
        self,
        name: str,
        path: Path,
        version: str,
        stage: str,
        reason: str,
        ctx: StrategyContext,
        detail: str = "",
        digest: str = "",
    ) -> tuple[LoadedStrategy, str]:
        kept = self._loaded.get(name)
        failure = ReloadFailure(
            name, path, version, stage, reason, ctx.trading_date, datetime.now(UTC), kept.version if kept else None, detail
        )
        self._errors[name] = failure
        if digest:
            self._failed[name] = (digest, ctx.trading_date)
        logger.error("strategy %s: version %s rejected at %s: %s", name, version or "?", stage, reason)
        self._send_alert(failure)
        return self._serve_kept(name)

    def _store_kept(self, name: str, source: bytes) -> None:
        if self._keep_dir is not None:
            atomic_write_bytes(self._keep_dir / f"{name}.py", source)

    def _restore_kept(self, name: str) -> None:
        """Serve the source kept by an earlier process as the running version (it passed its dry run then)."""
        kept = self._keep_dir / f"{name}.py" if self._keep_dir is not None else None
        if kept is None or not kept.is_file():
            return
        source = kept.read_bytes()
        digest = hashlib.sha256(source).hexdigest()
        version = digest[:VERSION_LEN]
        module_name = unique_module_name(name, version)
        try:
            module = load_strategy_source(kept, source, name, module_name)
        except StrategyLoadError as exc:
            logger.error("strategy %s: the kept version %s no longer loads: %s", name, version, exc.problem)
            return
        self._loaded[name] = LoadedStrategy(
            name, version, module.strategy, kept, False, datetime.now(UTC), module_name, self._time_limit_s
        )
        self._hashes[name] = digest

    def _serve_kept(self, name: str) -> tuple[LoadedStrategy, str]:
        kept = self._loaded.get(name)
        if kept is None:
            raise StrategyUnavailableError(name, self._errors[name])
        return kept, kept.version

    def _send_alert(self, failure: ReloadFailure) -> None:
        if self._alert is None:
            return
        if failure.kept_version:
            subject = f"strategy {failure.name}: edit rejected ({failure.stage}), still running version {failure.kept_version}"
        else:
            subject = f"strategy {failure.name}: not loaded ({failure.stage}), no orders from it"
        body = "\n".join(
            [
                f"strategy: {failure.name}",
                f"file: {failure.path}",
                f"rejected version: {failure.attempted_version or '(unreadable)'}",
                f"running version: {failure.kept_version or '(none)'}",
                f"trading date: {failure.trading_date}",
                f"stage: {failure.stage}",
                f"reason: {failure.reason}",
                "",
                failure.detail,
            ]
        ).rstrip()
        if len(subject) > MAX_SUBJECT:
            subject = subject[: MAX_SUBJECT - 3] + "..."
        try:
            self._alert(subject, body)
        except Exception:  # an alert outage must not stop the trading run
            logger.exception("strategy %s: alert could not be sent", failure.name)

    def _reject_shadowing_file(self, name: str, ctx: StrategyContext) -> None:
        if self._dir is None:
            return
        path = self._dir / f"{name}.py"
        if not path.is_file():
            return
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            digest = "unreadable"
        if self._failed.get(name, ("", ""))[0] == digest:
            return
        reason = f"{path.name} has the name of a built-in strategy and is ignored; rename the file and its strategy"
        self._keep(name, path, digest[:VERSION_LEN], "name", reason, ctx, "", digest)

    def _forget(self, name: str) -> None:
        loaded = self._loaded.pop(name, None)
        if loaded is not None and loaded.module_name:
            sys.modules.pop(loaded.module_name, None)
        self._hashes.pop(name, None)
