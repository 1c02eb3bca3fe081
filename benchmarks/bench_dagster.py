"""Dagster benchmark: the lake group, the nightly run and `kobe demo` through Dagster, each beside
its yardstick, in one run.

    python benchmarks/bench_dagster.py                  # the issue's sizes (about ten minutes on 2 cores)
    python benchmarks/bench_dagster.py --quick          # 500 and 24 symbols, nightly at 100 and 500

Every measured command is a fresh process started the way a user or the Dagster daemon starts it
(`kobe lake freeze`, `dagster asset materialize`, `dagster job execute`), timed with /usr/bin/time,
which also gives its peak memory (max RSS).

Targets (issue 16):
- the lake group through Dagster over ten years of sessions at 5,000 simulated symbols within 2x
  of `kobe lake freeze --provider simulated` of the same sessions and symbols; at 24 within 10x;
- the nightly run as the daemon runs it (refreeze one session with signals, the trading sensor's
  tick, the trading run) at 5,000 symbols within 20 s, and under 3x its time at 500;
- `kobe demo` on a fresh folder under 120 s, and a second one with nothing new in seconds;
- peak memory of every one of these under 4 GiB;
- and beside them: importing `kobe_pipelines.definitions` on top of Dagster itself, the nightly
  refreeze with the multiprocess executor against the in-process one, and how much Dagster's own
  storage grows per nightly run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIB = 1024 * 1024  # KB in a GiB (max RSS is reported in KB)
SESSIONS = 2520  # ten years
SMALL_MODEL_SYMBOLS = 24


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_kb: int  # the largest single process's peak RSS (/usr/bin/time)
    output: str
    tree_peak_kb: int = 0  # the most the command's processes held together (sampled, see `TreeMemory`)


class TreeMemory:
    """The peak of the summed RSS of a process and all its descendants (a run's process and its
    quality worker), sampled from /proc every `interval` seconds on a thread. Pages shared between
    the processes are counted in each, so this is an upper bound; a peak shorter than the
    interval can be missed."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak_kb

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(p) for p in _tree(self.pid)))


def _tree(root: int) -> list[int]:
    """`root` and its descendants now living (from /proc/<pid>/stat's parent field)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(args: list[str], env: dict, cwd: Path | None = None) -> Measured:
    """`args` in a fresh process under /usr/bin/time, with its process tree's memory sampled;
    raises with its output when it fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as timing:
        proc = subprocess.Popen(["/usr/bin/time", "-o", timing.name, "-f", "%e %M", *args], env=env, cwd=cwd or REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        memory = TreeMemory(proc.pid)
        stdout, stderr = proc.communicate()
        tree_peak = memory.stop()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:4])} failed ({proc.returncode}):\n{stdout[-3000:]}\n{stderr[-3000:]}")
        seconds, peak = timing.read().split()[-2:]
    return Measured(float(seconds), int(peak), stdout + stderr, tree_peak)


def base_env(root: Path, symbols: int, start: str, end: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOBE_", "DAGSTER_", "MLFLOW_"))}
    (root / "home").mkdir(parents=True, exist_ok=True)
    (root / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (root / "state").mkdir(exist_ok=True)
    env.update({"KOBE_SIM_SYMBOLS": str(symbols), "KOBE_HISTORY_START": start, "KOBE_SIM_END": end,
                "KOBE_LAKE_DIR": str(root / "lake"), "KOBE_STATE_DIR": str(root / "state"), "DAGSTER_HOME": str(root / "home"),
                "MLFLOW_LOGGING_LEVEL": "WARNING", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "GX_ANALYTICS_ENABLED": "False"})
    return env


def sessions_config(first: str, last: str) -> str:
    return json.dumps({"ops": {"raw_daily_bars": {"config": {"first": first, "last": last}}}})


def ten_years() -> tuple[list[str], str]:
    """The last `SESSIONS` completed sessions before the last two (kept for the nightly), and the
    session after them (the nightly's)."""
    from kobe_pipelines import market_calendar

    days = [str(d.date()) for d in market_calendar.sessions("2000-01-03", market_calendar.last_completed_session())]
    return days[-SESSIONS - 2:-2], days[-2]


# ---- the lake group ------------------------------------------------------------------------------

def lake_group(symbols: int, rounds: int, work: Path) -> dict:
    """`kobe lake freeze --provider simulated` against the lake group through Dagster (the run the
    UI's "Materialize" of the group, or a catch-up refreeze, makes), same sessions and symbols."""
    history, _ = ten_years()
    cli, dagster = [], []
    for i in range(rounds):
        for kind in ("cli", "dagster"):
            root = work / f"lake-{symbols}-{kind}-{i}"
            env = base_env(root, symbols, history[0], history[-1])
            if kind == "cli":
                cli.append(run([str(BIN / "kobe"), "lake", "freeze", "--provider", "simulated", "--end", history[-1]], env))
            else:
                dagster.append(run([str(BIN / "dagster"), "asset", "materialize", "--select", "group:lake", "-m",
                                    "kobe_pipelines.definitions", "--config-json", sessions_config(history[0], history[-1])], env))
                planned = _planned_events(env)
            shutil.rmtree(root)
    c, d = statistics.median(m.seconds for m in cli), statistics.median(m.seconds for m in dagster)
    print(f"lake group, {symbols:,} symbols x {len(history):,} sessions: kobe lake freeze {c:.2f} s, Dagster {d:.2f} s, "
          f"ratio {d / c:.2f} (rounds: {', '.join(f'{y.seconds / x.seconds:.2f}' for x, y in zip(cli, dagster))}); "
          f"peak {max(m.peak_kb for m in cli) / GIB:.2f} / {max(m.peak_kb for m in dagster) / GIB:.2f} GiB "
          f"(all processes together {max(m.tree_peak_kb for m in cli) / GIB:.2f} / {max(m.tree_peak_kb for m in dagster) / GIB:.2f} GiB); "
          f"Dagster planned events {planned}", flush=True)
    return {"cli_s": c, "dagster_s": d, "ratio": d / c, "peak_gib": max(m.peak_kb for m in cli + dagster) / GIB,
            "tree_peak_gib": max(m.tree_peak_kb for m in cli + dagster) / GIB}


def _planned_events(env: dict) -> int:
    code = ("import dagster as dg; i = dg.DagsterInstance.get(); r = i.get_runs()[0];"
            "print(len(i.get_records_for_run(r.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records))")
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()[-1])


# ---- the nightly run -------------------------------------------------------------------------------

def nightly(symbols: int, work: Path, multiprocess: bool, repeats: int = 1) -> dict:
    """The nightly run as the daemon makes it, on a lake holding ten years at `symbols` and a
    production model: `refreeze_job` for one session in a fresh process, the trading sensor's
    tick in another, and the trading run it requests in a third. With `repeats` > 1 the night is
    run again that many times in all, each time from the state before the first (its median is
    reported, every run printed)."""
    history, day = ten_years()
    root = work / f"nightly-{symbols}"
    env = base_env(root, symbols, history[0], day)
    run([str(BIN / "kobe"), "lake", "freeze", "--provider", "simulated", "--end", history[-1]], env)
    _production_model(root, env)
    snapshot = work / f"nightly-{symbols}-lake"
    shutil.copytree(root / "lake", snapshot)
    before_kb = _folder_kb(root / "home")
    config = root / "sessions.json"  # `dagster job execute` reads run config from files
    config.write_text(sessions_config(day, day))
    night = work / f"nightly-{symbols}-before"  # everything as it is before the first night
    if repeats > 1:
        shutil.copytree(root, night)
    nights = []
    for i in range(repeats):
        if i:
            shutil.rmtree(root)
            shutil.copytree(night, root)
        refreeze, tick, trade = _night(env, config)
        nights.append((refreeze, tick, trade))
        if repeats > 1:
            print(f"  nightly, {symbols:,} symbols, run {i + 1}: {refreeze.seconds + tick.seconds + trade.seconds:.2f} s "
                  f"(refreeze_job {refreeze.seconds:.2f} s, sensor tick {tick.seconds:.2f} s, trading_job {trade.seconds:.2f} s)",
                  flush=True)
    shutil.rmtree(night, ignore_errors=True)
    refreeze, tick, trade = sorted(nights, key=lambda n: sum(m.seconds for m in n))[len(nights) // 2]  # the median night
    grown_kb = _folder_kb(root / "home") - before_kb
    outputs_kb = _asset_outputs_kb(root / "home")
    total = refreeze.seconds + tick.seconds + trade.seconds
    peak = max(refreeze.peak_kb, tick.peak_kb, trade.peak_kb) / GIB
    tree_peak = max(refreeze.tree_peak_kb, tick.tree_peak_kb, trade.tree_peak_kb) / GIB
    print(f"nightly, {symbols:,} symbols: {total:.2f} s (refreeze_job {refreeze.seconds:.2f} s, sensor tick {tick.seconds:.2f} s, "
          f"trading_job {trade.seconds:.2f} s), peak {peak:.2f} GiB (all processes together {tree_peak:.2f} GiB); Dagster storage +{grown_kb:,} KB, of which "
          f"{outputs_kb:,} KB the assets' latest outputs (replaced, not added to, by the next night)", flush=True)
    out = {"total_s": total, "refreeze_s": refreeze.seconds, "peak_gib": peak, "tree_peak_gib": tree_peak, "storage_kb": grown_kb, "outputs_kb": outputs_kb}
    if multiprocess:
        shutil.rmtree(root / "lake")
        shutil.copytree(snapshot, root / "lake")
        multi = run([str(BIN / "dagster"), "job", "execute", "-f", str(Path(__file__).with_name("bench_dagster_multiprocess_defs.py")),
                     "-a", "defs", "-j", "refreeze_job_multiprocess", "-c", str(config)], env)
        print(f"nightly refreeze_job, {symbols:,} symbols: in-process executor {refreeze.seconds:.2f} s, "
              f"multiprocess {multi.seconds:.2f} s (ratio {multi.seconds / refreeze.seconds:.2f})", flush=True)
        out["multiprocess_s"] = multi.seconds
    shutil.rmtree(snapshot)
    shutil.rmtree(root)
    return out


def _night(env: dict, config: Path) -> tuple[Measured, Measured, Measured]:
    """One night: the refreeze, the trading sensor's tick, and the trading run it requests."""
    refreeze = run([str(BIN / "dagster"), "job", "execute", "-m", "kobe_pipelines.definitions", "-j", "refreeze_job",
                    "-c", str(config)], env)
    tick = run([sys.executable, "-c", TICK], env)
    request = json.loads(tick.output.strip().splitlines()[-1])
    trade = run([str(BIN / "dagster"), "job", "execute", "-m", "kobe_pipelines.definitions", "-j", "trading_job",
                 "--tags", json.dumps({**request["tags"], "dagster/run_key": request["run_key"]})], env)
    return refreeze, tick, trade


TICK = """
import json, dagster as dg
from kobe_pipelines.definitions import defs
context = dg.build_sensor_context(instance=dg.DagsterInstance.get(), definitions=defs)
[request] = defs.resolve_sensor_def("trading_sensor").evaluate_tick(context).run_requests
print(json.dumps({"run_key": request.run_key, "tags": dict(request.tags)}))
"""


def _production_model(root: Path, env: dict) -> None:
    """A production kobe-ensemble in the nightly's MLflow store, trained quickly on a small market
    in a lake of its own (the nightly's lake is the one it scores)."""
    code = f"""
import dagster as dg
from kobe_pipelines.defs.driver import LoopDriver, training_config
from kobe_pipelines.defs.env_resources import AlertsResource, BrokerResource, MlflowResource, RiskResource, StrategyResource
from kobe_pipelines.defs.backtest.resources import BacktestResource
from kobe_pipelines.defs.resources import LakeResource, MarketDataResource
state = {str(root / 'state')!r}
resources = dict(lake=LakeResource(lake_dir={str(root / 'model-lake')!r}), alerts=AlertsResource(state_dir=state),
                 market_data=MarketDataResource(sim_symbols={SMALL_MODEL_SYMBOLS}, history_start="2022-01-03", sim_end="2024-06-28"),
                 mlflow=MlflowResource(state_dir=state), broker=BrokerResource(state_dir=state), risk=RiskResource(state_dir=state),
                 strategy=StrategyResource(state_dir=state), backtest=BacktestResource(backtest_dir={str(root / 'backtests')!r}))
driver = LoopDriver(resources, dg.DagsterInstance.ephemeral())
driver.freeze("2022-01-03", "2024-06-28", with_signals=False)
driver.train(training_config(max_epochs=2, n_folds=1))
"""
    run([sys.executable, "-c", code], env)


def _folder_kb(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024


RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _asset_outputs_kb(home: Path) -> int:
    """KB of the IO manager's asset outputs under `storage/` (one file per asset key, overwritten
    by each materialization), as opposed to each run's own folder there (its captured logs)."""
    storage = home / "storage"
    if not storage.is_dir():
        return 0
    return sum(p.stat().st_size for p in storage.rglob("*")
               if p.is_file() and not RUN_ID.fullmatch(p.relative_to(storage).parts[0])) // 1024


# ---- the demo and the import -----------------------------------------------------------------------

def demo(work: Path) -> dict:
    folder = work / "fresh-clone"
    folder.mkdir()
    shutil.copy(REPO / "workspace.yaml", folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOBE_", "DAGSTER_", "MLFLOW_"))}
    measured = run([str(BIN / "kobe"), "demo"], env, cwd=folder)
    print(f"kobe demo on a fresh folder: {measured.seconds:.2f} s, peak {measured.peak_kb / GIB:.2f} GiB "
          f"(all processes together {measured.tree_peak_kb / GIB:.2f} GiB); "
          f"state/dagster {_folder_kb(folder / 'state' / 'dagster'):,} KB", flush=True)
    again = run([str(BIN / "kobe"), "demo"], env, cwd=folder)
    if "Nothing changed" not in again.output:
        raise RuntimeError(f"the second kobe demo did not say that nothing changed:\n{again.output[-2000:]}")
    print(f"kobe demo again, nothing new: {again.seconds:.2f} s, peak {again.peak_kb / GIB:.2f} GiB", flush=True)
    shutil.rmtree(folder)
    return {"seconds": measured.seconds, "again_s": again.seconds, "peak_gib": max(measured.peak_kb, again.peak_kb) / GIB,
            "tree_peak_gib": max(measured.tree_peak_kb, again.tree_peak_kb) / GIB}


IMPORT = """
import time
t0 = time.perf_counter(); import dagster; t1 = time.perf_counter(); import kobe_pipelines.definitions; t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def import_time(rounds: int = 5) -> dict:
    both = [tuple(map(float, subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, check=True)
                      .stdout.split())) for _ in range(rounds)]
    dagster, ours = statistics.median(b[0] for b in both), statistics.median(b[1] for b in both)
    print(f"import: dagster {dagster:.2f} s, kobe_pipelines.definitions on top {ours:.2f} s (medians of {rounds})", flush=True)
    return {"dagster_s": dagster, "ours_s": ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 and 24 symbols; nightly at 100 and 500")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the lake comparison (medians are reported)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["lake", "nightly", "demo", "import"])
    parser.add_argument("--nights", type=int, default=1,
                        help="nightly runs at the larger size, each from the same state (the median is reported)")
    args = parser.parse_args()
    big, small = (500, 24) if args.quick else (5000, 24)
    nightly_sizes = (100, 500) if args.quick else (500, 5000)
    work = Path(tempfile.mkdtemp(prefix="bench-dagster-"))
    results: dict = {}
    try:
        if "import" not in args.skip:
            results["import"] = import_time()
        if "lake" not in args.skip:
            results["lake"] = {n: lake_group(n, args.rounds, work) for n in (small, big)}
        if "nightly" not in args.skip:
            results["nightly"] = {n: nightly(n, work, multiprocess=(n == nightly_sizes[0]),
                                             repeats=args.nights if n == nightly_sizes[1] else 1) for n in nightly_sizes}
        if "demo" not in args.skip:
            results["demo"] = demo(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nsummary (targets in brackets)")
    if "lake" in results:
        for n, target in ((big, 2.0), (small, 10.0)):
            r = results["lake"][n]
            print(f"  lake group / kobe lake freeze, {n:,} symbols: {r['ratio']:.2f}  [<= {target:g}]; peak {r['peak_gib']:.2f} GiB, "
                  f"all processes together {r['tree_peak_gib']:.2f} GiB [< 4]")
    if "nightly" in results:
        lo, hi = (results["nightly"][n] for n in nightly_sizes)
        print(f"  nightly run, {nightly_sizes[1]:,} symbols: {hi['total_s']:.2f} s  [<= 20]; "
              f"against {nightly_sizes[0]:,}: {hi['total_s'] / lo['total_s']:.2f}  [< 3]; peak {max(lo['peak_gib'], hi['peak_gib']):.2f} GiB, "
              f"all processes together {max(lo['tree_peak_gib'], hi['tree_peak_gib']):.2f} GiB [< 4]")
        if "multiprocess_s" in lo:
            print(f"  refreeze_job, multiprocess / in-process executor: {lo['multiprocess_s'] / lo['refreeze_s']:.2f}")
        print(f"  Dagster storage per nightly run: {hi['storage_kb']:,} KB, of which {hi['outputs_kb']:,} KB replaced by the next night")
    if "demo" in results:
        print(f"  kobe demo, fresh folder: {results['demo']['seconds']:.2f} s  [< 120]; again with nothing new "
              f"{results['demo']['again_s']:.2f} s  [seconds]; peak {results['demo']['peak_gib']:.2f} GiB, "
              f"all processes together {results['demo']['tree_peak_gib']:.2f} GiB [< 4]")
    if "import" in results:
        print(f"  import kobe_pipelines.definitions beyond dagster: {results['import']['ours_s']:.2f} s  [well under 1]")


if __name__ == "__main__":
    main()
