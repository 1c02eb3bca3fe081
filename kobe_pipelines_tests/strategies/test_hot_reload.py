from __future__ import annotations

import hashlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import kobe_pipelines.strategies.ranked_long as ranked_long_module
from kobe_pipelines.risk.types import Side
from kobe_pipelines.strategies import (
    LoadedStrategy,
    StrategyRegistry,
    StrategyUnavailableError,
    UnknownStrategyError,
)
from kobe_pipelines.strategies.loader import MODULE_PREFIX
from kobe_pipelines_tests.strategies.conftest import fixed_source

MOMO = '''
from kobe_pipelines.strategies import RankedLong, RankedLongConfig

STRATEGY = RankedLong(RankedLongConfig(top_n={top_n}, atr_period=3), name="momo")
'''


def _sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


_BEFORE: set[str] = set()


@pytest.fixture(autouse=True)
def _module_snapshot():
    """Remember the user-strategy modules other tests left, so `_modules` counts only this test's."""
    _BEFORE.clear()
    _BEFORE.update(m for m in sys.modules if m.startswith(MODULE_PREFIX))


def _modules(name: str) -> list[str]:
    return [m for m in sys.modules if m.startswith(f"{MODULE_PREFIX}_{name}_") and m not in _BEFORE]


@pytest.fixture
def registry(strategy_dir, inbox):
    reg = StrategyRegistry(strategy_dir, inbox, time_limit_s=5.0)
    yield reg
    reg.close()


def test_get_when_new_file_then_loads_it_with_the_sha256_of_its_bytes_as_version(registry, write_strategy, make_ctx):
    path = write_strategy("momo", MOMO.format(top_n=1))
    loaded, version = registry.get("momo", make_ctx())
    assert version == _sha12(path) == loaded.version
    assert loaded.name == "momo" and loaded.source_path == path and not loaded.builtin
    assert registry.last_error("momo") is None


def test_get_when_file_edited_then_next_get_serves_the_new_version_and_its_intents(registry, write_strategy, make_ctx):
    ctx = make_ctx({"AAA": 0.8, "BBB": 0.7})
    write_strategy("momo", MOMO.format(top_n=1))
    v1_strategy, v1 = registry.get("momo", ctx)
    run1 = v1_strategy.run(ctx)
    assert [(i.symbol, i.strategy_version) for i in run1.intents] == [("AAA", v1)]

    write_strategy("momo", MOMO.format(top_n=2))
    v2_strategy, v2 = registry.get("momo", ctx)
    run2 = v2_strategy.run(ctx)
    assert v2 != v1
    assert [(i.symbol, i.strategy_version) for i in run2.intents] == [("AAA", v2), ("BBB", v2)]
    assert run2.error is None and run2.rejected == ()
    # one order per (strategy, symbol, session): the edit changes the version, not the id
    assert run1.intents[0].client_order_id == run2.intents[0].client_order_id


def test_get_when_edit_keeps_size_and_mtime_then_content_hash_still_sees_it(registry, write_strategy, make_ctx):
    path = write_strategy("fixed", fixed_source(qty="10"))
    _, v1 = registry.get("fixed", make_ctx())
    before = os.stat(path)
    write_strategy("fixed", fixed_source(qty="20"))  # same length as qty=10
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    loaded, v2 = registry.get("fixed", make_ctx())
    assert v2 != v1 and loaded.run(make_ctx()).intents[0].qty == 20


DATACLASS_STRATEGY = '''
from __future__ import annotations

from dataclasses import dataclass

from kobe_pipelines.strategies import RankedLong, RankedLongConfig


@dataclass(frozen=True)
class Settings:
    top_n: int = 1


STRATEGY = RankedLong(RankedLongConfig(top_n=Settings().top_n, atr_period=3), name="with_dataclass")
'''


def test_get_when_file_defines_dataclasses_then_loads(registry, write_strategy, make_ctx):
    # dataclasses look their module up in sys.modules while the class is built.
    write_strategy("with_dataclass", DATACLASS_STRATEGY)
    loaded, _ = registry.get("with_dataclass", make_ctx())
    assert [i.symbol for i in loaded.run(make_ctx()).intents] == ["AAA"]


def test_get_when_file_unchanged_then_serves_the_same_loaded_object_without_reloading(registry, write_strategy, make_ctx):
    write_strategy("fixed", fixed_source())
    first, _ = registry.get("fixed", make_ctx())
    second, _ = registry.get("fixed", make_ctx())
    assert second is first
    assert len(_modules("fixed")) == 1


BROKEN_EDITS = {
    "syntax error": (fixed_source().replace("def generate(self, ctx):", "def generate(self, ctx)"), "import", "SyntaxError"),
    "import error": ("import kobe_no_such_module\n" + fixed_source(), "import", "ModuleNotFoundError"),
    "exit at import": ("raise SystemExit(3)\n", "import", "SystemExit"),
    "generate raises": (fixed_source(qty="1 // 0"), "dry_run", "ZeroDivisionError"),
    "negative qty": (fixed_source(qty="-5"), "dry_run", "qty"),
    "float qty": (fixed_source(qty="12.5"), "dry_run", "qty"),
    "stop above entry for a buy": (fixed_source(stop="52.00"), "dry_run", "stop"),
    "returns None": (fixed_source().replace("return [", "_ = ["), "dry_run", "NoneType"),
    "no strategy defined": ("X = 1\n", "interface", "no STRATEGY"),
    "name differs from file": (fixed_source().replace('name = "fixed"', 'name = "other"'), "interface", "differs"),
    "no generate": ("class S:\n    name = 'fixed'\n\nSTRATEGY = S()\n", "interface", "generate"),
}


@pytest.mark.parametrize("case", list(BROKEN_EDITS))
def test_get_when_edit_is_broken_then_keeps_last_good_version_and_alerts_with_reason(
    registry, write_strategy, make_ctx, inbox, case
):
    source, stage, fragment = BROKEN_EDITS[case]
    write_strategy("fixed", fixed_source())
    good, v1 = registry.get("fixed", make_ctx())
    broken_path = write_strategy("fixed", source)

    served, version = registry.get("fixed", make_ctx())

    assert served is good and version == v1
    assert [i.qty for i in served.run(make_ctx()).intents] == [10]  # still trades as v1
    failure = registry.last_error("fixed")
    assert failure is not None and failure.stage == stage and fragment in failure.reason
    assert failure.kept_version == v1 and failure.attempted_version == _sha12(broken_path)
    assert len(inbox.sent) == 1
    subject, body = inbox.sent[0]
    assert "fixed" in subject and f"still running version {v1}" in subject
    assert fragment in body and str(broken_path) in body
    assert len(_modules("fixed")) == 1  # the broken module was not left in sys.modules


def test_get_when_same_broken_content_asked_again_the_same_day_then_alerts_only_once(registry, write_strategy, make_ctx, inbox):
    write_strategy("fixed", fixed_source())
    registry.get("fixed", make_ctx())
    write_strategy("fixed", fixed_source(qty="-5"))
    registry.get("fixed", make_ctx())
    registry.get("fixed", make_ctx())
    assert len(inbox.sent) == 1


def test_get_when_broken_edit_is_then_fixed_then_loads_the_fix_and_clears_last_error(registry, write_strategy, make_ctx):
    write_strategy("fixed", fixed_source())
    _, v1 = registry.get("fixed", make_ctx())
    write_strategy("fixed", fixed_source(qty="-5"))
    registry.get("fixed", make_ctx())
    fixed_path = write_strategy("fixed", fixed_source(qty="30"))
    loaded, v3 = registry.get("fixed", make_ctx())
    assert v3 == _sha12(fixed_path) != v1
    assert loaded.run(make_ctx()).intents[0].qty == 30
    assert registry.last_error("fixed") is None


def test_get_when_reload_succeeds_then_the_replaced_module_leaves_sys_modules(registry, write_strategy, make_ctx):
    write_strategy("fixed", fixed_source())
    first, _ = registry.get("fixed", make_ctx())
    write_strategy("fixed", fixed_source(qty="20"))
    second, _ = registry.get("fixed", make_ctx())
    assert _modules("fixed") == [second.module_name]
    assert first.module_name not in sys.modules


def test_get_when_first_version_is_broken_then_raises_unavailable_and_alerts(registry, write_strategy, make_ctx, inbox):
    write_strategy("fixed", fixed_source(stop="52.00"))
    with pytest.raises(StrategyUnavailableError) as err:
        registry.get("fixed", make_ctx())
    assert err.value.failure.stage == "dry_run" and "stop" in str(err.value)
    assert len(inbox.sent) == 1 and "not loaded" in inbox.sent[0][0]
    assert registry.current_version("fixed") is None


def test_get_when_dry_run_exceeds_time_limit_then_keeps_last_good_version(strategy_dir, inbox, write_strategy, make_ctx):
    registry = StrategyRegistry(strategy_dir, inbox, time_limit_s=0.2)
    write_strategy("fixed", fixed_source())
    _, v1 = registry.get("fixed", make_ctx())
    # The hung dry run waits 5 s on an event nobody sets, in a daemon thread the registry abandons.
    hung = fixed_source().replace("        return [", "        import threading\n        threading.Event().wait(5)\n        return [")
    write_strategy("fixed", hung)
    _, version = registry.get("fixed", make_ctx())
    assert version == v1
    assert registry.last_error("fixed").stage == "timeout"
    assert "0.2 s" in inbox.sent[0][1]


def test_get_when_strategy_name_is_long_then_alert_subject_stays_one_line_of_200_chars(registry, write_strategy, make_ctx, inbox):
    name = "s" * 200
    write_strategy(name, fixed_source().replace('name = "fixed"', f'name = "{name}"').replace("1 // 0", "1"))
    registry.get(name, make_ctx())
    write_strategy(name, "syntax error here\n")
    registry.get(name, make_ctx())
    subject = inbox.sent[0][0]
    assert len(subject) == 200 and "\n" not in subject


def test_get_when_alert_callable_fails_then_still_serves_last_good_version(strategy_dir, write_strategy, make_ctx, caplog):
    def broken_alert(subject: str, body: str) -> None:
        raise ConnectionError("smtp down")

    registry = StrategyRegistry(strategy_dir, broken_alert)
    write_strategy("fixed", fixed_source())
    _, v1 = registry.get("fixed", make_ctx())
    write_strategy("fixed", fixed_source(qty="-5"))
    assert registry.get("fixed", make_ctx())[1] == v1
    assert "alert could not be sent" in caplog.text


@pytest.mark.parametrize("name", ["nope", "../fixed", "fixed.py", "_private"])
def test_get_when_no_such_strategy_file_then_unknown_strategy_error(registry, write_strategy, make_ctx, name):
    write_strategy("fixed", fixed_source())
    write_strategy("_private", fixed_source())
    with pytest.raises(UnknownStrategyError):
        registry.get(name, make_ctx())


def test_get_when_file_deleted_then_strategy_is_gone(registry, write_strategy, make_ctx):
    path = write_strategy("fixed", fixed_source())
    registry.get("fixed", make_ctx())
    path.unlink()
    with pytest.raises(UnknownStrategyError):
        registry.get("fixed", make_ctx())
    assert _modules("fixed") == []


def test_get_when_builtin_then_versioned_by_the_hash_of_its_source_file(registry, make_ctx):
    loaded, version = registry.get("ranked_long", make_ctx())
    assert version == _sha12(Path(ranked_long_module.__file__))
    assert loaded.builtin and loaded.name == "ranked_long"
    assert all(i.strategy_version == version for i in loaded.run(make_ctx()).intents)


def test_get_when_user_file_named_like_a_builtin_then_builtin_served_and_alerted(registry, write_strategy, make_ctx, inbox):
    write_strategy("ranked_long", MOMO.format(top_n=1).replace('name="momo"', 'name="ranked_long"'))
    loaded, _ = registry.get("ranked_long", make_ctx())
    assert loaded.builtin
    assert registry.last_error("ranked_long").stage == "name"
    assert len(inbox.sent) == 1 and "built-in" in inbox.sent[0][1]


def test_names_when_folder_has_files_then_lists_builtins_and_public_files(registry, write_strategy):
    write_strategy("momo", MOMO.format(top_n=1))
    write_strategy("_helpers", "X = 1\n")
    (registry.strategy_dir / "notes.txt").write_text("not a strategy")
    assert registry.names() == ["momo", "ranked_long"]


def test_close_when_called_then_user_modules_leave_sys_modules_and_builtins_stay(registry, write_strategy, make_ctx):
    write_strategy("fixed", fixed_source())
    registry.get("fixed", make_ctx())
    registry.close()
    assert _modules("fixed") == []
    assert registry.get("ranked_long", make_ctx())[0].builtin


class _Scripted:
    """A strategy object whose `generate` does what the test scripts (for LoadedStrategy.run)."""

    name = "scripted"

    def __init__(self, behaviour):
        self.behaviour = behaviour

    def generate(self, ctx):
        return self.behaviour(ctx)


def _loaded(behaviour) -> LoadedStrategy:
    return LoadedStrategy("scripted", "v9", _Scripted(behaviour), Path("scripted.py"), False, datetime.now(UTC))


def test_run_when_generate_raises_then_error_recorded_and_no_intents(make_ctx, caplog):
    def boom(ctx):
        raise KeyError("score")

    run = _loaded(boom).run(make_ctx())
    assert run.intents == () and run.rejected == ()
    assert "KeyError" in run.error and "scripted" in caplog.text


def test_run_when_some_intents_malformed_then_only_well_formed_ones_are_kept(make_ctx):
    from kobe_pipelines.strategies import Strategy

    helper = type("H", (Strategy,), {"name": "scripted", "generate": lambda self, ctx: []})()

    def mixed(ctx):
        good = helper.make_intent(ctx, "AAA", Side.BUY, 10, 51.23, 48.41, 54.33)
        bad = helper.make_intent(ctx, "BBB", Side.BUY, -5, 0.8765, 0.7565, 1.01)
        return [good, bad]

    run = _loaded(mixed).run(make_ctx())
    assert [i.symbol for i in run.intents] == ["AAA"] and run.intents[0].strategy_version == "v9"
    assert [r.fields for r in run.rejected] == [("qty",)]


def test_run_when_generate_returns_not_a_list_then_error(make_ctx):
    assert "dict" in _loaded(lambda ctx: {}).run(make_ctx()).error


def test_get_when_a_new_process_meets_a_broken_edit_then_it_serves_the_version_kept_by_the_last_one(
    tmp_path, strategy_dir, write_strategy, make_ctx
):
    # each Dagster run is a new process: the last good version must survive it, kept in state/
    keep = tmp_path / "state" / "strategies"
    path = write_strategy("momo", MOMO.format(top_n=1))
    first = StrategyRegistry(strategy_dir, keep_dir=keep)
    _, v1 = first.get("momo", make_ctx())
    first.close()
    assert v1 == _sha12(path)
    write_strategy("momo", "this is not python(\n")
    alerts = []
    second = StrategyRegistry(strategy_dir, alert=lambda subject, body: alerts.append(subject), keep_dir=keep)
    loaded, version = second.get("momo", make_ctx())
    assert version == v1 == loaded.version
    assert len(alerts) == 1 and v1 in alerts[0]
    second.close()
