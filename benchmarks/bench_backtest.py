"""Backtest benchmark: our day-by-day loop beside backtrader, in one run.

    python benchmarks/bench_backtest.py                    # 500 symbols x 5 years (issue 15's size)
    python benchmarks/bench_backtest.py --symbols 50 --years 1   # a quick run
    python benchmarks/bench_backtest.py --lstm             # the retraining mode with the LSTM member too

Targets (issue 15), on this 2-core machine:
- loop: 500 symbols x 5 years (about 1,260 sessions) with signals already scored (the simulator's
  exact 5-session oracle) through ranked_long, the policy gate and its audit log, the paper
  broker, the ledger, slippage, the drawdown monitor and the invariants at every close: <= 120 s;
- the same with walk-forward retraining every 63 sessions (tree and linear members): <= 600 s;
- backtrader, the same strategy on the same bars and scores, timed in the same run: ours at
  least as fast (ratio backtrader / ours >= 1);
- peak memory (resident set of the process running each mode) < 4 GiB.

Each mode runs in a process of its own, so its peak memory is its own. The lake and the data
files are built first (not timed) in a temporary folder that is removed at the end. backtrader
runs in the benchmark's environment (`.bench-venv`, not a project dependency):

    python3.11 -m venv .bench-venv && .bench-venv/bin/pip install backtrader pandas pyarrow
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_PYTHON = ROOT / ".bench-venv" / "bin" / "python"
LOOP_TARGET_S, RETRAIN_TARGET_S, MEMORY_TARGET_GIB = 120.0, 600.0, 4.0


def build(workdir: Path, symbols: int, start: str, end: str, history_start: str) -> None:
    """The lake (simulated market), the oracle scores and backtrader's Parquet file."""
    import pandas as pd

    from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
    from kobe_pipelines.lake import Lake

    sim = SimulatedProvider(SimConfig(seed=7, n_symbols=symbols, start=history_start, end=end))
    lake = Lake(workdir / "lake")
    version = lake.freeze(sim.daily_bars(history_start, end), sim.splits(history_start, end),
                          sim.dividends(history_start, end), provider="simulated").version
    scores = sim.oracle_score(5, start, end)
    scores.to_parquet(workdir / "scores.parquet")
    bars = lake.read_bars(version.version_id, "total")
    bars.merge(scores, on=["symbol", "date"], how="left").to_parquet(workdir / "backtrader.parquet")
    (workdir / "version").write_text(version.version_id)
    del pd


def child(mode: str, workdir: Path, start: str, end: str, lstm: bool) -> dict:
    """One mode of ours, in this process; its timings and peak memory."""
    import pandas as pd

    from kobe_pipelines.backtest.market import PointInTimeMarket
    from kobe_pipelines.backtest.runner import BacktestConfig, run_backtest
    from kobe_pipelines.execution.corporate_actions import actions_from_tables
    from kobe_pipelines.backtest.signals import ScoredSignals
    from kobe_pipelines.backtest.walk_forward import TABULAR_MEMBERS, WalkForwardConfig, WalkForwardSignals
    from kobe_pipelines.lake import Lake
    from kobe_pipelines.ml.features import features_from_lake
    from kobe_pipelines.strategies import StrategyRegistry

    lake = Lake(workdir / "lake")
    version = (workdir / "version").read_text()
    began = time.perf_counter()
    market = PointInTimeMarket.from_lake(lake, version)
    sessions = market.sessions[(market.sessions >= pd.Timestamp(start)) & (market.sessions <= pd.Timestamp(end))]
    if mode == "loop":
        source = ScoredSignals(pd.read_parquet(workdir / "scores.parquet"), model_name="oracle")
    else:
        members = ("lstm", *TABULAR_MEMBERS) if lstm else TABULAR_MEMBERS
        source = WalkForwardSignals(features_from_lake(lake, version), sessions,
                                    WalkForwardConfig(retrain_every=63, members=members))
    actions = actions_from_tables(lake.derived_table("splits", version), lake.derived_table("dividends", version),
                                  symbols=[str(s) for s in market.symbols], start=start, end=end)
    setup = time.perf_counter() - began
    run = run_backtest(market, source, BacktestConfig(start=start, end=end), workdir / f"out-{mode}", StrategyRegistry(),
                       actions=actions)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    per_session = [r.seconds for r in run.sessions]
    return {"mode": mode, "setup_s": setup, "loop_s": run.timings["loop_s"], "signals_s": run.timings["signals_s"],
            "sessions": len(run.sessions), "per_session_ms": 1000 * run.timings["loop_s"] / max(1, len(run.sessions)),
            "slowest_session_ms": 1000 * max(per_session), "peak_gib": peak,
            "fills": sum(len(r.run.fills) for r in run.sessions), "final_equity": run.sessions[-1].reading.equity}


def run_child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_backtrader(workdir: Path, start: str, end: str) -> dict | None:
    if not BENCH_PYTHON.exists():
        print(f"backtrader: skipped ({BENCH_PYTHON} missing; see the module docstring)")
        return None
    script = Path(__file__).with_name("backtrader_ranked_long.py")
    began = time.perf_counter()
    done = subprocess.run([str(BENCH_PYTHON), str(script), str(workdir / "backtrader.parquet"), start, end],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"backtrader failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - began
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--lstm", action="store_true", help="retraining mode: the LSTM member too")
    parser.add_argument("--skip-retrain", action="store_true")
    parser.add_argument("--child", choices=["loop", "retrain"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start", default="2019-01-02", help=argparse.SUPPRESS)
    parser.add_argument("--end", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import pandas as pd

    start = args.start
    end = args.end or str((pd.Timestamp(start) + pd.DateOffset(years=args.years) - pd.Timedelta(days=1)).date())
    if args.child:
        print(json.dumps(child(args.child, args.workdir, start, end, args.lstm)))
        return
    history_start = str((pd.Timestamp(start) - pd.DateOffset(years=2)).date())
    workdir = Path(tempfile.mkdtemp(prefix="kobe-bench-backtest-"))
    try:
        began = time.perf_counter()
        build(workdir, args.symbols, start, end, history_start)
        print(f"data: {args.symbols} symbols, history {history_start}..{end}, backtest {start}..{end} "
              f"(built in {time.perf_counter() - began:.1f} s, not timed below)")
        common = ["--workdir", str(workdir), "--start", start, "--end", end]
        loop = run_child(["--child", "loop", *common])
        retrain = None if args.skip_retrain else run_child(["--child", "retrain", *common, *(["--lstm"] if args.lstm else [])])
        trader = run_backtrader(workdir, start, end)
        report(loop, retrain, trader, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(loop: dict, retrain: dict | None, trader: dict | None, args) -> None:
    rows = [("ours: loop, signals scored", loop["loop_s"], loop["per_session_ms"], loop["peak_gib"], LOOP_TARGET_S)]
    if retrain is not None:
        total = retrain["loop_s"] + retrain["signals_s"]
        members = "tree, linear, LSTM" if args.lstm else "tree, linear"
        rows.append((f"ours: retrain every 63 ({members})", total, 1000 * total / retrain["sessions"], retrain["peak_gib"],
                     RETRAIN_TARGET_S))
    if trader is not None:
        rows.append(("backtrader, same strategy and bars", trader["seconds"], 1000 * trader["seconds"] / max(1, trader["sessions"]),
                     trader["peak_gib"], None))
    print(f"\n{'mode':44} {'seconds':>9} {'ms/session':>11} {'peak GiB':>9} {'target':>9}")
    for name, seconds, per, peak, target in rows:
        verdict = "" if target is None else f"<= {target:.0f} s " + ("met" if seconds <= target else "MISSED")
        print(f"{name:44} {seconds:9.1f} {per:11.1f} {peak:9.2f} {verdict}")
    print(f"\nsessions: {loop['sessions']}; slowest session of the loop: {loop['slowest_session_ms']:.0f} ms; "
          f"fills: {loop['fills']}; peak memory target < {MEMORY_TARGET_GIB:.0f} GiB: "
          + ("met" if max(r[3] for r in rows) < MEMORY_TARGET_GIB else "MISSED"))
    if trader is not None:
        ratio = trader["seconds"] / loop["loop_s"]
        print(f"backtrader / ours (loop): {ratio:.2f} ({'ours at least as fast' if ratio >= 1 else 'ours SLOWER'}); "
              f"backtrader placed {trader['orders']} bracket orders on {trader['feeds']} feeds")
    if retrain is not None:
        print(f"retrain mode: {retrain['signals_s']:.1f} s in signals and retraining, {retrain['loop_s']:.1f} s in the loop")


if __name__ == "__main__":
    main()
