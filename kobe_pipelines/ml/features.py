"""Features and labels from ONE pinned lake version.

Every feature of (symbol, date t) is computed from that symbol's bars at dates <= t, plus (for
the `*_rel` features) other symbols' features at the same date t: nothing after t is read.
Lookbacks count the symbol's own trading rows (a halted symbol's gap is skipped, not filled).

Units: returns are simple fractions (0.01 = 1%); volatilities are daily standard deviations of
log returns (not annualised); distances from moving averages are close / mean(close) - 1.

The label is the forward `horizon`-row simple return, close_{t+h} / close_t - 1 (default h=5),
on total-return adjusted closes; it is NaN for a symbol's last h rows. The label is the only
column that looks forward and models never see it as an input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kobe_pipelines.data import schema
from kobe_pipelines.errors import RecordError
from kobe_pipelines.ml.errors import FeatureValueError

RETURN_WINDOWS = (1, 5, 10, 21, 63)
VOL_WINDOWS = (21, 63)
MA_WINDOWS = (10, 50)
VOLUME_WINDOW = 21
RANGE_WINDOW = 5
RELATIVE_RETURNS = (1, 5, 21)
DEFAULT_HORIZON = 5

# The longest lookback: ret_63 and vol_63 need 64 closes, so a symbol's first 63 rows are warm-up.
WARMUP_ROWS = max(max(RETURN_WINDOWS), max(VOL_WINDOWS), max(MA_WINDOWS) - 1, VOLUME_WINDOW - 1)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{k}" for k in RETURN_WINDOWS),
    *(f"vol_{k}" for k in VOL_WINDOWS),
    *(f"ma_dist_{k}" for k in MA_WINDOWS),
    f"volume_z_{VOLUME_WINDOW}",
    f"range_{RANGE_WINDOW}",
    *(f"ret_{k}_rel" for k in RELATIVE_RETURNS),
)
KEY_COLUMNS = ("symbol", "date")


def label_column(horizon: int) -> str:
    return f"fwd_ret_{horizon}"


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Features and labels of one lake version.

    `frame` has `symbol`, `date`, the `feature_names` columns and `label` (forward return),
    sorted by symbol then date, warm-up rows removed; every feature value is finite.
    """

    frame: pd.DataFrame
    feature_names: tuple[str, ...]
    label: str
    horizon: int
    version_id: str
    content_hash: str
    warmup_rows: int = WARMUP_ROWS
    meta: dict = field(default_factory=dict)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(np.sort(self.frame["date"].unique()))

    @property
    def labelled(self) -> pd.DataFrame:
        """Rows whose label is known (the last `horizon` rows of each symbol have none yet)."""
        return self.frame.loc[self.frame[self.label].notna()]


def compute_features(bars: pd.DataFrame, *, version_id: str, content_hash: str, horizon: int = DEFAULT_HORIZON) -> FeatureSet:
    """Features and the forward-return label from total-return adjusted bars (`schema.BAR_COLUMNS`)
    of the lake version `version_id` (whose `content_hash` is recorded with the result)."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 row (got {horizon})")
    df = _validated(bars)
    g = df.groupby("symbol", sort=False)
    pos = g.cumcount().to_numpy()
    close = df["close"].to_numpy()
    log_close = np.log(close)
    log_ret = np.where(pos >= 1, log_close - np.roll(log_close, 1), np.nan)

    out = pd.DataFrame({"symbol": df["symbol"].to_numpy(), "date": df["date"].to_numpy()})
    for k in RETURN_WINDOWS:
        out[f"ret_{k}"] = _masked(np.exp(log_close - np.roll(log_close, k)) - 1.0, pos, k)
    log_ret_s = pd.Series(log_ret)
    for k in VOL_WINDOWS:
        # a window of k returns needs k + 1 closes, so it is valid from row k on
        out[f"vol_{k}"] = _masked(log_ret_s.rolling(k).std().to_numpy(), pos, k)
    close_s = pd.Series(close)
    for k in MA_WINDOWS:
        out[f"ma_dist_{k}"] = _masked(close / close_s.rolling(k).mean().to_numpy() - 1.0, pos, k - 1)
    log_vol = pd.Series(np.log1p(df["volume"].to_numpy()))
    mean_v = log_vol.rolling(VOLUME_WINDOW).mean().to_numpy()
    std_v = log_vol.rolling(VOLUME_WINDOW).std().to_numpy()
    # a volume that never varied carries no surprise: z = 0 rather than 0/0
    z = np.divide(log_vol.to_numpy() - mean_v, std_v, out=np.zeros_like(mean_v), where=std_v > 0)
    out[f"volume_z_{VOLUME_WINDOW}"] = _masked(z, pos, VOLUME_WINDOW - 1)
    day_range = pd.Series((df["high"].to_numpy() - df["low"].to_numpy()) / close)
    out[f"range_{RANGE_WINDOW}"] = _masked(day_range.rolling(RANGE_WINDOW).mean().to_numpy(), pos, RANGE_WINDOW - 1)
    for k in RELATIVE_RETURNS:
        col = out[f"ret_{k}"]
        out[f"ret_{k}_rel"] = col - col.groupby(out["date"]).transform("mean")

    fwd = np.roll(close, -horizon) / close - 1.0
    rows_left = g.cumcount(ascending=False).to_numpy()
    label = label_column(horizon)
    out[label] = np.where(rows_left >= horizon, fwd, np.nan)

    out = out.loc[pos >= WARMUP_ROWS].reset_index(drop=True)
    check_finite(out, FEATURE_NAMES, where=f"features of lake version {version_id}")
    return FeatureSet(out, FEATURE_NAMES, label, horizon, version_id, content_hash)


def features_from_lake(lake, version_id: str, *, horizon: int = DEFAULT_HORIZON, symbols: list[str] | None = None) -> FeatureSet:
    """Features of the pinned lake version `version_id` (never "whatever is current").

    Raises `LakeVersionNotFound` for an unknown id."""
    manifest = lake.version(version_id)
    bars = lake.read_bars(version_id=manifest.version_id, view="total", symbols=symbols)
    return compute_features(bars, version_id=manifest.version_id, content_hash=manifest.content_hash, horizon=horizon)


def check_finite(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], where: str) -> None:
    """Raise `FeatureValueError` naming the first (symbol, date, column) whose value is NaN or infinite."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RecordError("feature frame", where, missing[0], "is missing")
    values = frame.loc[:, list(columns)].to_numpy(dtype="float64")
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        record = frame.iloc[row]
        name = f"{record['symbol']} {pd.Timestamp(record['date']).date()}" if "symbol" in frame.columns else f"row {row}"
        raise FeatureValueError(name, columns[col], values[row, col], where)


def _validated(bars: pd.DataFrame) -> pd.DataFrame:
    df = schema.normalize_bars(bars).sort_values(["symbol", "date"], kind="mergesort").reset_index(drop=True)
    dup = df.duplicated(["symbol", "date"])
    if dup.any():
        r = df.loc[dup].iloc[0]
        raise RecordError("bar", f"{r['symbol']} {r['date'].date()}", "date", "appears more than once")
    for col in ("close", "high", "low"):
        bad = ~(np.isfinite(df[col].to_numpy()) & (df[col].to_numpy() > 0))
        if bad.any():
            r = df.loc[bad].iloc[0]
            raise RecordError("bar", f"{r['symbol']} {r['date'].date()}", col, "must be a positive finite price", r[col])
    bad = ~(np.isfinite(df["volume"].to_numpy()) & (df["volume"].to_numpy() >= 0))
    if bad.any():
        r = df.loc[bad].iloc[0]
        raise RecordError("bar", f"{r['symbol']} {r['date'].date()}", "volume", "must be a finite number >= 0", r["volume"])
    return df


def _masked(values: np.ndarray, pos: np.ndarray, first_valid: int) -> np.ndarray:
    """Blank the rows whose lookback would reach into the previous symbol's rows."""
    return np.where(pos >= first_valid, values, np.nan)
