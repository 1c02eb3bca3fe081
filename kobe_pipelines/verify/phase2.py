"""Phase 2 live checks: the market-data lake on the simulated market."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
from kobe_pipelines.data.quality import check_adjusted_jumps
from kobe_pipelines.errors import RecordError
from kobe_pipelines.lake import Lake, publish
from kobe_pipelines.verify.base import VerifyCheck, run_check

START, END, NEXT = "2021-01-04", "2022-12-29", "2022-12-30"


class _SimulatedCrash(RuntimeError):
    pass


def run_checks(workdir: Path) -> list[VerifyCheck]:
    sim = SimulatedProvider(SimConfig(seed=5, n_symbols=16, start=START, end=NEXT))
    lake = Lake(workdir / "data_lake")

    def inputs(end: str):
        return sim.daily_bars(START, end), sim.splits(START, end), sim.dividends(START, end)

    def freeze() -> str:
        result = lake.freeze(*inputs(END), provider="simulated")
        m = result.version
        if not result.created or lake.current_version_id() != m.version_id:
            raise AssertionError("the first freeze did not publish a current version")
        return f"{m.version_id}: {m.row_counts['bars']} bars, {m.row_counts['splits']} splits, {m.row_counts['dividends']} dividends"

    def identical() -> str:
        before = lake.current_version()
        again = lake.freeze(*inputs(END), provider="simulated")
        if again.created or again.version.content_hash != before.content_hash:
            raise AssertionError("identical inputs made a new version")
        return "identical inputs: same content hash, no new version"

    def jumps() -> str:
        m = lake.current_version()
        events = store_events(lake)
        returns = lake.event_returns(m.files, events)
        reports = [check_adjusted_jumps(frame, view) for view, frame in returns.items()]
        failed = [r.summary() for r in reports if not r.success]
        if failed:
            raise AssertionError("; ".join(failed))
        return f"{len(returns['total'])} events, no unexplained jump in either adjusted view"

    def catalog() -> str:
        with duckdb.connect(str(lake.catalog_path), read_only=True) as con:
            n = con.execute("SELECT count(*) FROM bars").fetchone()[0]
        if n != lake.current_version().row_counts["bars"]:
            raise AssertionError(f"catalog.duckdb view bars has {n} rows")
        return f"catalog.duckdb: bars has {n} rows"

    def bad_input() -> str:
        before = lake.current_version_id()
        bars, splits, dividends = inputs(NEXT)
        bars.loc[bars.index[-1], "close"] = float("nan")
        try:
            lake.freeze(bars, splits, dividends, provider="simulated")
        except RecordError as exc:
            if lake.current_version_id() != before:
                raise AssertionError("a rejected freeze changed the current version") from exc
            return f"rejected: {exc}"
        raise AssertionError("a NaN close was accepted")

    def crash() -> str:
        before = lake.current_version_id()

        def boom(step: str) -> None:
            if step == "manifest_written":
                raise _SimulatedCrash(step)

        original = publish.checkpoint
        publish.checkpoint = boom
        try:
            lake.freeze(*inputs(NEXT), provider="simulated")
        except _SimulatedCrash:
            pass
        finally:
            publish.checkpoint = original
        if lake.current_version_id() != before or lake.verify():
            raise AssertionError("an interrupted freeze changed or damaged the current version")
        after = lake.freeze(*inputs(NEXT), provider="simulated").version
        return f"interrupted freeze left {before} current; the retry published {after.version_id}"

    return [
        run_check(2, "freeze the simulated market", freeze),
        run_check(2, "identical refreeze makes no version", identical),
        run_check(2, "adjusted views: no unexplained jumps", jumps),
        run_check(2, "DuckDB catalog readable", catalog),
        run_check(2, "bad bar blocks the freeze", bad_input),
        run_check(2, "interrupted freeze is harmless", crash),
        run_check(2, "kobe lake verify: files match manifest", lambda: _verify(lake)),
    ]


def store_events(lake: Lake) -> pd.DataFrame:
    return lake.events()


def _verify(lake: Lake) -> str:
    problems = lake.verify()
    if problems:
        raise AssertionError("; ".join(problems))
    return f"{len(lake.current_version().files)} files re-hashed"
