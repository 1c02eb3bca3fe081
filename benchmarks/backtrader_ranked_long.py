"""ranked_long in backtrader, for `bench_backtest.py` (runs in the benchmark's own environment,
`.bench-venv`, where backtrader is installed; it imports nothing from kobe_pipelines).

    .bench-venv/bin/python benchmarks/backtrader_ranked_long.py DATA.parquet START END [--cash USD]

DATA.parquet: symbol, date, open, high, low, close, volume, score (the same total-return bars
and the same scores our backtest reads). The strategy is ranked_long's rules: every session, the
top 5 scores above 0 not held get a limit buy at the close (rounded down to the cent) with a
stop 2 ATR(14) below and a take-profit 3 ATR above, sized to risk 1 % of equity, at most 10 %
of equity and the cash left. Prints one JSON line: seconds in cerebro.run(), sessions, orders, final
value, feeds and the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time

import backtrader as bt
import pandas as pd

TOP_N, ATR_PERIOD, STOP_ATR, TARGET_ATR = 5, 14, 2.0, 3.0
RISK_PER_TRADE, MAX_POSITION = 0.01, 0.10


class ScoredData(bt.feeds.PandasData):
    lines = ("score",)
    params = (("score", -1),)


class RankedLong(bt.Strategy):
    params = (("start", None),)

    def __init__(self):
        self.atr = {d._name: bt.indicators.AverageTrueRange(d, period=ATR_PERIOD, movav=bt.indicators.MovAv.Simple)
                    for d in self.datas}
        self.orders = 0
        self.sessions = 0
        self.working: list = []  # entries placed at the last session: day orders, cancelled after one bar

    def prenext(self):
        self.next()  # symbols listed later (or gone) must not hold the others' sessions back

    def next(self):
        today = max(d.datetime.date(0) for d in self.datas if len(d))
        if today < self.p.start:
            return  # the bars before the backtest's start only warm the ATR up
        self.sessions += 1
        for order in self.working:
            if order.alive():
                self.cancel(order)  # its bracket legs go with it
        self.working = []
        scored = [(d.score[0], d._name, d) for d in self.datas
                  if len(d) > ATR_PERIOD and d.datetime.date(0) == today and d.score[0] > 0 and math.isfinite(d.score[0])]
        scored.sort(key=lambda item: (-item[0], item[1]))
        equity = self.broker.getvalue()
        cash = self.broker.getcash()
        for _score, name, data in scored[:TOP_N]:
            if self.getposition(data).size != 0:
                continue
            atr = float(self.atr[name][0])
            entry = math.floor(data.close[0] * 100) / 100
            stop = math.floor((entry - STOP_ATR * atr) * 100) / 100
            target = math.ceil((entry + TARGET_ATR * atr) * 100) / 100
            if not (atr > 0 and 0 < stop < entry):
                continue
            qty = int(min(RISK_PER_TRADE * equity / (entry - stop), MAX_POSITION * equity / entry, cash / entry))
            if qty < 1:
                continue
            cash -= qty * entry
            main, _stop, _target = self.buy_bracket(data=data, size=qty, price=entry, stopprice=stop, limitprice=target,
                                                    exectype=bt.Order.Limit)
            self.working.append(main)
            self.orders += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("start")
    parser.add_argument("end")
    parser.add_argument("--cash", type=float, default=1_000_000.0)
    args = parser.parse_args()
    frame = pd.read_parquet(args.data)
    frame["date"] = pd.to_datetime(frame["date"])
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(args.cash)
    cerebro.broker.set_slippage_perc(0.0005)  # 5 bps, as our paper broker
    start, end = pd.Timestamp(args.start), pd.Timestamp(args.end)
    history = frame.loc[frame["date"] <= end]
    for symbol, rows in history.groupby("symbol", sort=True):
        rows = rows.set_index("date").sort_index()
        cerebro.adddata(ScoredData(dataname=rows, fromdate=start - pd.Timedelta(days=40), todate=end), name=str(symbol))
    cerebro.addstrategy(RankedLong, start=start.date())
    began = time.perf_counter()
    strategy = cerebro.run(runonce=False)[0]
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"seconds": seconds, "sessions": strategy.sessions, "orders": strategy.orders,
                      "final_value": cerebro.broker.getvalue(), "feeds": len(cerebro.datas), "peak_gib": peak}))


if __name__ == "__main__":
    main()
