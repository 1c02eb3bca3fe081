"""Lake benchmark: full refreeze, nightly refreeze and reads, each beside its yardstick, in one run.

    python benchmarks/bench_lake.py                      # 5,000 symbols x 2,520 sessions (12.6M bars)
    python benchmarks/bench_lake.py --symbols 50000 --rounds 1   # 126M bars (about 15 GB of temporary files)
    python benchmarks/bench_lake.py --symbols 500        # a quick run
    python benchmarks/bench_lake.py --symbols 50000 --source /tmp/src50k   # keep (or reuse) the generated source

Targets (issue 20), at 5,000 and at 50,000 symbols:
- full refreeze (streamed from the source file) <= 1.5x DuckDB copying the same raw bars
  Parquet -> Parquet; peak memory < 2 GiB; >= 20x faster than the plan's per-event pandas loop;
- nightly refreeze (one new session, ten new corporate actions) <= 10% of a full one;
- one symbol's history (`Lake.read_bars`, an early and a middle symbol) and one day's
  cross-section (the `bars` view) from the current version <= 1.5x reading the same rows from a
  plain Parquet file with DuckDB; one symbol through the `bars` view (SQL) is held to the same
  target (the closed years' history files keep a symbol in one or two row groups of one file).
Beside them, the year-end compaction (`Lake.compact`) against the full refreeze (no target: it
runs once a year).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kobe_pipelines import market_calendar  # noqa: E402
from kobe_pipelines.data.providers.base import bar_batches_for_freeze, bars_for_freeze  # noqa: E402
from kobe_pipelines.data.providers.files import FilesProvider  # noqa: E402
from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider  # noqa: E402
from kobe_pipelines.lake import Lake  # noqa: E402

SESSIONS = 2520


def _timed(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


CHUNK_SYMBOLS = 1000  # symbols simulated at a time: the generator's memory is set by this, not by --symbols


def make_source(folder: Path, symbols: int) -> tuple[str, str]:
    """Simulated raw bars and actions for `symbols` x 2,520 sessions, less the last session,
    which is held back (with ten extra actions) for the nightly refreeze: its source holds that
    session's bars only, as a provider returns them. Generated CHUNK_SYMBOLS symbols at a time
    (each chunk its own seed, symbols K00000, K00001, ...) and written as they come, sorted by
    symbol and date."""
    end = market_calendar.last_completed_session()
    days = market_calendar.sessions("2000-01-03", end)[-SESSIONS:]
    start, last = str(days[0].date()), str(days[-1].date())
    last_ts = pd.Timestamp(last)
    full, nightly = folder / "full", folder / "nightly"
    full.mkdir(parents=True)
    nightly.mkdir()
    writers: dict[str, pq.ParquetWriter] = {}
    last_day, all_splits, all_dividends, n_bars = [], [], [], 0

    def write(path: Path, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if str(path) not in writers:
            writers[str(path)] = pq.ParquetWriter(path, table.schema)
        writers[str(path)].write_table(table)

    for chunk, first in enumerate(range(0, symbols, CHUNK_SYMBOLS)):
        count = min(CHUNK_SYMBOLS, symbols - first)
        sim = SimulatedProvider(SimConfig(seed=3 + chunk, n_symbols=count, start=start, end=last, listing_share=0,
                                          delisting_share=0))
        names = {f"K{i:04d}": f"K{first + i:05d}" for i in range(count)}
        bars = sim.daily_bars(start, last)
        bars = bars.assign(symbol=bars["symbol"].astype(str).map(names))
        all_splits.append(sim.splits(start, last).assign(symbol=lambda f: f["symbol"].astype(str).map(names)))
        all_dividends.append(sim.dividends(start, last).assign(symbol=lambda f: f["symbol"].astype(str).map(names)))
        write(full / "bars.parquet", bars.loc[bars["date"] < last_ts])
        write(folder / "plain.parquet", bars)  # every bar in one plain file: the read yardstick
        last_day.append(bars.loc[bars["date"] == last_ts])
        n_bars += len(bars)
        del bars, sim
    for writer in writers.values():
        writer.close()
    splits, dividends = pd.concat(all_splits, ignore_index=True), pd.concat(all_dividends, ignore_index=True)
    dividends = dividends.sort_values(["ex_dividend_date", "symbol"], kind="stable", ignore_index=True)
    splits.loc[splits["execution_date"] < last_ts].to_parquet(full / "splits.parquet", index=False)
    old_divs = dividends.loc[dividends["ex_dividend_date"] < last_ts]
    old_divs.iloc[:-10].to_parquet(full / "dividends.parquet", index=False)
    # the nightly source is what a provider returns for one new session (Polygon: one grouped-daily
    # call), and its current view of every corporate action (the nightly asks for the last 30 days)
    pd.concat(last_day, ignore_index=True).to_parquet(nightly / "bars.parquet", index=False)
    splits.to_parquet(nightly / "splits.parquet", index=False)
    dividends.to_parquet(nightly / "dividends.parquet", index=False)  # ten more actions than `full`
    print(f"source: {n_bars:,} bars, {len(splits):,} splits, {len(dividends):,} dividends, {start}..{last}")
    return start, last


def kept_source(folder: Path, symbols: int) -> tuple[str, str, Path]:
    """The source in `folder` (made by `make_source` for `symbols` on this last session), made
    first when it is not there: (start, end, the folder holding full/, nightly/, plain.parquet)."""
    stamp = folder / "range"
    end = str(market_calendar.last_completed_session().date())
    if stamp.exists():
        made_symbols, start, made_end = stamp.read_text().split()
        if int(made_symbols) == symbols and made_end == end:
            return start, end, folder / "src"
    shutil.rmtree(folder, ignore_errors=True)
    start, end = make_source(folder / "src", symbols)
    stamp.write_text(f"{symbols} {start} {end}")
    return start, end, folder / "src"


def _freeze(source: Path, lake_dir: Path, start: str, end: str, only_day: str | None = None) -> None:
    """A full freeze, streamed from the source file (`daily_bar_batches`), or (`only_day`) a
    nightly one as the Dagster assets run it: that session's bars, and the actions from the
    current version's last date minus 30 days."""
    provider = FilesProvider(source)
    lake = Lake(lake_dir)
    actions_from = lake.actions_fetch_start(start) if only_day else start
    bars = bars_for_freeze(provider, only_day, end) if only_day else bar_batches_for_freeze(provider, start, end)
    lake.freeze(bars, provider.splits(actions_from, end), provider.dividends(actions_from, end), provider="files")


def _compact_after_year_end(lake_dir: Path, end: str) -> None:
    """The compaction the first refreeze of the next year runs: the history files and the year of
    `end` merged into new history files."""
    Lake(lake_dir).compact(as_of=dt.date(int(end[:4]) + 1, 1, 2))


def _child(target, args, queue) -> None:
    elapsed = _timed(lambda: target(*args))
    queue.put((elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def in_child(target, *args) -> tuple[float, int]:
    """Run in a fresh process: (seconds, peak resident bytes of that process). The page cache is
    written out first, so that no step pays for the disk writes of the one before it (a nightly
    refreeze's fsyncs would otherwise wait behind the 300 MB the full one just wrote)."""
    os.sync()
    queue: mp.Queue = mp.get_context("fork").Queue()
    proc = mp.get_context("fork").Process(target=_child, args=(target, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"child failed with exit code {proc.exitcode}")
    return result


def duckdb_copy(source: Path, out: Path) -> None:
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * FROM read_parquet('{source}')) TO '{out}' (FORMAT parquet)")


def plan_loop_seconds(source: Path, sample_symbols: int, n_symbols: int) -> tuple[float, int]:
    """The plan's per-event pandas loop (correct formulas, the sketch's structure), on a sample
    (the first symbols, read alone from the source)."""
    from bench_adjust_vs_plan import plan_loop as plan_adjust  # the faithful re-implementation of the plan

    sample = {f"K{i:05d}" for i in range(sample_symbols)}
    bars = pq.read_table(source / "bars.parquet", filters=[("symbol", "in", sorted(sample))]).to_pandas()
    splits = pd.read_parquet(source / "splits.parquet")
    dividends = pd.read_parquet(source / "dividends.parquet")
    seconds = _timed(
        lambda: plan_adjust(bars, splits.loc[splits["symbol"].isin(sample)], dividends.loc[dividends["symbol"].isin(sample)])
    )
    return seconds, n_symbols


def read_ratios(lake_dir: Path, plain_file: Path, symbols: list[str], day: str, repeat: int = 25) -> dict[str, tuple[float, float]]:
    """Median seconds (lake, plain file) of each read, the two interleaved so that both see the
    same machine. The plain file is read by a DuckDB session of its own, with the footer cache on.
    One symbol's history: `Lake.read_bars` (a frame sorted by date) beside the plain file's rows
    as a frame sorted by date, for each of `symbols`; and through the `bars` view of a
    `Lake.connect` session (a DuckDB scan of every raw file), beside the plain file in Arrow.
    One day's cross-section: the `bars` view, in Arrow."""
    lake = Lake(lake_dir)
    plain = str(plain_file)
    out = {}
    # the lake's session may read the lake's files only: the plain file is read by a session of its own
    with lake.connect() as lake_con, duckdb.connect() as plain_con:
        plain_con.execute("SET parquet_metadata_cache = true")
        cases = {}
        for symbol in symbols:
            one_symbol = f"SELECT * FROM read_parquet('{plain}') WHERE symbol = '{symbol}'"
            cases[f"one symbol {symbol}, read_bars"] = (
                lambda symbol=symbol: lake.read_bars(symbols=[symbol]),
                lambda one_symbol=one_symbol: plain_con.sql(one_symbol + " ORDER BY date").df(),
            )
        cases[f"one symbol {symbols[0]}, SQL view"] = (
            lambda: lake_con.sql(f"SELECT * FROM bars WHERE symbol = '{symbols[0]}'").to_arrow_table(),
            lambda: plain_con.sql(f"SELECT * FROM read_parquet('{plain}') WHERE symbol = '{symbols[0]}'").to_arrow_table(),
        )
        cases["one day, cross-section"] = (
            lambda: lake_con.sql(f"SELECT * FROM bars WHERE date = DATE '{day}'").to_arrow_table(),
            lambda: plain_con.sql(f"SELECT * FROM read_parquet('{plain}') WHERE date = TIMESTAMP '{day}'").to_arrow_table(),
        )
        for name, (lake_read, plain_read) in cases.items():
            assert len(lake_read()) == len(plain_read()), name
            samples_lake, samples_plain = [], []
            for _ in range(repeat):
                samples_lake.append(_timed(lake_read))
                samples_plain.append(_timed(plain_read))
            out[name] = (statistics.median(samples_lake), statistics.median(samples_plain))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--plan-sample", type=int, default=50, help="symbols timed with the plan's loop (extrapolated)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of copy, full and nightly refreeze")
    parser.add_argument("--source", type=Path, help="folder of the generated source, kept after the run and reused by "
                        "a later run with the same --symbols (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kobe-bench-lake-"))
    try:
        start, end, source = kept_source(args.source, args.symbols) if args.source else (*make_source(work / "src", args.symbols), work / "src")
        full, nightly = source / "full", source / "nightly"

        # Rounds of (copy, full refreeze into a fresh lake, nightly refreeze on it), each in a fresh
        # process, side by side; the machine is shared, so each figure is the best of the rounds
        # (the least disturbed run), with the median shown beside it.
        copies, freezes, nightlies, peaks = [], [], [], []
        for round_ in range(args.rounds):
            lake_dir = work / f"lake-{round_}"
            copies.append(in_child(duckdb_copy, full / "bars.parquet", work / "copy.parquet")[0])
            seconds, peak = in_child(_freeze, full, lake_dir, start, end)
            freezes.append(seconds)
            peaks.append(peak)
            nightlies.append(in_child(_freeze, nightly, lake_dir, start, end, end)[0])
            if round_ < args.rounds - 1:
                shutil.rmtree(lake_dir)
        copy_s, freeze_s, nightly_s = min(copies), min(freezes), min(nightlies)
        med = statistics.median
        # Each round's own ratio too: its steps ran back to back, so a slow spell of the shared
        # machine slows both sides of it; the median of those is the steadiest figure.
        paired_copy = med(f / c for f, c in zip(freezes, copies))
        paired_nightly = med(n / f for n, f in zip(nightlies, freezes))
        print(f"\n{args.rounds} rounds; best (median) [median of the rounds' own ratios]")
        print(f"full refreeze:   {freeze_s:8.2f} s ({med(freezes):.2f})   peak RSS {max(peaks) / 2**30:.2f} GiB (target < 2 GiB)")
        print(f"duckdb copy:     {copy_s:8.2f} s ({med(copies):.2f})   ratio freeze/copy = {freeze_s / copy_s:.2f} "
              f"({med(freezes) / med(copies):.2f}) [{paired_copy:.2f}] (target <= 1.5)")

        plan_s, n_symbols = plan_loop_seconds(full, args.plan_sample, args.symbols)
        plan_full = plan_s * n_symbols / args.plan_sample
        print(f"plan loop:       {plan_s:8.2f} s on {args.plan_sample} symbols -> {plan_full:.1f} s extrapolated to "
              f"{n_symbols}; speed-up = {plan_full / freeze_s:.1f}x (target >= 20)")
        print(f"nightly refreeze:{nightly_s:8.2f} s ({med(nightlies):.2f})   = {nightly_s / freeze_s:.1%} "
              f"({med(nightlies) / med(freezes):.1%}) [{paired_nightly:.1%}] of a full one (target <= 10%)")

        for name, (lake_t, plain_t) in read_ratios(lake_dir, source / "plain.parquet", ["K00042", f"K{args.symbols // 2:05d}"], end).items():
            target = "target <= 1.5"
            print(f"read {name:<32} lake {lake_t * 1000:7.1f} ms  plain parquet {plain_t * 1000:7.1f} ms  "
                  f"ratio {lake_t / plain_t:.2f} ({target})")
        # once a year: the year just ended merged into the history files (after the reads above)
        compact_s, compact_peak = in_child(_compact_after_year_end, lake_dir, end)
        print(f"year-end compaction: {compact_s:.2f} s = {compact_s / freeze_s:.2f}x the best full refreeze, "
              f"peak RSS {compact_peak / 2**30:.2f} GiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
