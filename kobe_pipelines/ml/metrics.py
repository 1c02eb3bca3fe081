"""Cross-sectional signal metrics.

Conventions (all computed per date across symbols, then summarised over dates):

- IC: Pearson correlation of score and label on one date; `ic` is its mean over dates.
- Rank IC: Spearman correlation (Pearson of the ranks); `rank_ic` is its mean over dates.
- Dates with fewer than `MIN_SYMBOLS` scored symbols, or a constant score or label, are skipped.
- Standard error of the mean rank IC: labels of consecutive dates overlap by `horizon - 1` rows,
  so daily ICs are not independent. Dates are cut into consecutive blocks of `horizon` dates; the
  block means are treated as independent and `rank_ic_se = std(block means) / sqrt(n blocks)`.
  `rank_ic_t = rank_ic_block_mean / rank_ic_se`.
- Hit rate: share of (symbol, date) rows where the score minus that date's mean score has the
  same sign as the label minus that date's mean label (0.5 = no skill).
- Long-short Sharpe: every `horizon`-th date a dollar-neutral portfolio is formed with weights
  proportional to the demeaned cross-sectional rank of the score, scaled so that the long side
  and the short side are each 1 (sum |w| = 2); it is held `horizon` days and earns sum(w * label).
  Non-overlapping periods avoid counting one move `horizon` times. Annualised with 252 sessions
  a year: mean / std * sqrt(252 / horizon). No costs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

MIN_SYMBOLS = 3
SESSIONS_PER_YEAR = 252


@dataclass(frozen=True)
class SignalMetrics:
    ic: float
    rank_ic: float
    rank_ic_se: float
    rank_ic_t: float
    hit_rate: float
    long_short_sharpe: float
    n_dates: int
    n_rows: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items()}


def daily_ic(frame: pd.DataFrame, score: str = "score", label: str = "label", method: str = "pearson") -> pd.Series:
    """IC per date (index: date), Pearson or Spearman; dates that cannot be scored are left out."""
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be pearson or spearman (got {method!r})")
    df = frame.loc[frame[score].notna() & frame[label].notna(), ["date", score, label]]
    if method == "spearman":
        grouped = df.groupby("date")
        df = pd.DataFrame({"date": df["date"], score: grouped[score].rank(), label: grouped[label].rank()})
    g = df.groupby("date")
    n = g.size()
    mx, my = g[score].transform("mean"), g[label].transform("mean")
    dx, dy = df[score] - mx, df[label] - my
    sxy = (dx * dy).groupby(df["date"]).sum()
    sxx = (dx * dx).groupby(df["date"]).sum()
    syy = (dy * dy).groupby(df["date"]).sum()
    ok = (n >= MIN_SYMBOLS) & (sxx > 0) & (syy > 0)
    return (sxy[ok] / np.sqrt(sxx[ok] * syy[ok])).rename(f"{method}_ic")


def block_mean_se(series: pd.Series, block: int) -> tuple[float, float]:
    """Mean of `block`-date block means and its standard error (see the module docstring)."""
    values = series.sort_index().to_numpy()
    if len(values) == 0:
        return float("nan"), float("nan")
    n_blocks = len(values) // block
    if n_blocks < 2:
        return float(values.mean()), float("nan")
    means = values[: n_blocks * block].reshape(n_blocks, block).mean(axis=1)
    return float(means.mean()), float(means.std(ddof=1) / np.sqrt(n_blocks))


def hit_rate(frame: pd.DataFrame, score: str = "score", label: str = "label") -> float:
    df = frame.loc[frame[score].notna() & frame[label].notna()]
    if df.empty:
        return float("nan")
    s = df[score] - df.groupby("date")[score].transform("mean")
    y = df[label] - df.groupby("date")[label].transform("mean")
    keep = (s != 0) & (y != 0)
    return float((np.sign(s[keep]) == np.sign(y[keep])).mean()) if keep.any() else float("nan")


def long_short_returns(frame: pd.DataFrame, horizon: int, score: str = "score", label: str = "label") -> pd.Series:
    """Return of the rank-weighted long-short portfolio on every `horizon`-th date (index: date)."""
    df = frame.loc[frame[score].notna() & frame[label].notna(), ["date", score, label]]
    dates = np.sort(df["date"].unique())[::horizon]
    df = df.loc[df["date"].isin(dates)]
    rank = df.groupby("date")[score].rank()
    centred = rank - rank.groupby(df["date"]).transform("mean")
    gross = centred.abs().groupby(df["date"]).transform("sum")
    weight = (2.0 * centred / gross.where(gross > 0)).fillna(0.0)
    return (weight * df[label]).groupby(df["date"]).sum()


def signal_metrics(frame: pd.DataFrame, horizon: int, score: str = "score", label: str = "label") -> SignalMetrics:
    """All metrics of `score` against `label` on the rows of `frame` (columns date, score, label)."""
    ic = daily_ic(frame, score, label, "pearson")
    ric = daily_ic(frame, score, label, "spearman")
    block_mean, se = block_mean_se(ric, horizon)
    ls = long_short_returns(frame, horizon, score, label)
    sd = ls.std(ddof=1) if len(ls) > 1 else float("nan")
    sharpe = float(ls.mean() / sd * np.sqrt(SESSIONS_PER_YEAR / horizon)) if sd and np.isfinite(sd) and sd > 0 else float("nan")
    return SignalMetrics(
        ic=float(ic.mean()) if len(ic) else float("nan"),
        rank_ic=float(ric.mean()) if len(ric) else float("nan"),
        rank_ic_se=se,
        rank_ic_t=block_mean / se if se and np.isfinite(se) and se > 0 else float("nan"),
        hit_rate=hit_rate(frame, score, label),
        long_short_sharpe=sharpe,
        n_dates=int(len(ric)),
        n_rows=int((frame[score].notna() & frame[label].notna()).sum()),
    )


@dataclass(frozen=True)
class OracleComparison:
    """A score's mean rank IC against the oracle's on the same rows (see `compare_to_oracle`)."""

    rank_ic: float
    oracle_rank_ic: float
    difference: float  # mean over dates of (rank IC - oracle rank IC)
    difference_se: float  # block standard error of that mean (blocks of `horizon` dates)
    n_dates: int

    @property
    def share(self) -> float:
        """The score's mean rank IC as a fraction of the oracle's (0.88 = 88 %)."""
        return self.rank_ic / self.oracle_rank_ic

    def judge(self, min_share: float, max_se_above: float = 2.0) -> str | None:
        """None when the score reaches `min_share` of the oracle and is not above it by more than
        `max_se_above` standard errors of the difference (above would mean a leak); else why not."""
        if not self.share >= min_share:
            return f"rank IC {self.rank_ic:.4f} is {self.share:.0%} of the oracle's {self.oracle_rank_ic:.4f} (need {min_share:.0%})"
        if not self.difference <= max_se_above * self.difference_se:
            return (f"rank IC {self.rank_ic:.4f} is above the oracle's {self.oracle_rank_ic:.4f} by {self.difference:.4f}, "
                    f"more than {max_se_above:g} standard errors ({self.difference_se:.4f}): a leak of future data?")
        return None


def compare_to_oracle(frame: pd.DataFrame, horizon: int, score: str = "score", oracle: str = "oracle",
                      label: str = "label") -> OracleComparison:
    """Rank ICs of `score` and `oracle` per date on the rows where both are set, and their paired
    difference with the block standard error of `block_mean_se` (the same dates enter both, so
    the market's day-to-day luck cancels in the difference)."""
    rows = frame.loc[frame[score].notna() & frame[oracle].notna() & frame[label].notna()]
    ours = daily_ic(rows, score, label, "spearman")
    best = daily_ic(rows, oracle, label, "spearman")
    both = ours.index.intersection(best.index)
    diff = ours.loc[both] - best.loc[both]
    mean_diff, se = block_mean_se(diff, horizon)
    return OracleComparison(float(ours.loc[both].mean()), float(best.loc[both].mean()), mean_diff, se, len(both))
