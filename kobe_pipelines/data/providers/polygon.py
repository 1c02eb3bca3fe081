"""The `polygon` provider: RAW daily bars and corporate actions from Polygon.io's REST API.

Requests, as polygon-api-client 1.16's `RESTClient` builds them (the key goes in the header
`Authorization: Bearer <key>`, never in the URL):

    daily_bars  GET /v2/aggs/grouped/locale/us/market/stocks/{session}?adjusted=false&...
                one call per XNYS session in [start, end]; T/o/h/l/c/v -> symbol/open/high/
                low/close/volume, date = the session asked for. `adjusted=false`: the lake
                stores raw prices and derives adjustments itself.
    splits      GET /v3/reference/splits?execution_date.gte=..&execution_date.lte=..&limit=..
    dividends   GET /v3/reference/dividends?ex_dividend_date.gte=..&ex_dividend_date.lte=..&limit=..
                then each `next_url` until an answer has none.

Settings (the settings layer, `kobe_pipelines.settings.MarketDataSettings`, reads them from the
environment; this module never does):
    POLYGON_API_KEY        required (`api_key`)
    KOBE_POLYGON_BASE_URL  `base_url`, default https://api.polygon.io (tests point it at a loopback server)

Retries: the client's own urllib3 `Retry`, configured here because the client hard-codes its
backoff (0.1 s) and never applies its timeouts. Status 429, 499, 500, 502, 503 and 504 and
connection errors are retried up to `max_retries` times; a `Retry-After` header (seconds or an
HTTP date, capped at `retry_after_max`) sets the wait, otherwise the wait is exponential:
0, 2*backoff, 4*backoff, ... capped at `backoff_max` (urllib3's schedule). urllib3 rather than
tenacity: only inside urllib3 is the response, with its Retry-After header, still visible; the
client turns a failed response into an exception that carries neither status nor headers.
When the retries run out, `PolygonError` names the endpoint, the session or date range and the
HTTP status. The API key never appears in a message or a log line.

All or nothing: a method returns only when every request of its range succeeded; one failure
mid-range raises and nothing is returned. The provider never writes anything.

Pagination is followed here, with the client's public `list_*(..., raw=True)` calls, because
the client's own iterator stops silently (returning what it has) when a page is not JSON or
lacks "results" -- that would truncate corporate actions without an error.

Dividends: Polygon's dividends endpoint lists cash distributions, typed CD (regular cash),
SC (special cash), LT and ST (long-/short-term capital-gain distributions of funds). All four
are cash per share that leaves the price on the ex-date, so all four are kept (a total-return
series needs them). A dividend of another type, or paid in a currency other than USD (amounts
must be USD per share to adjust USD prices; a missing currency is taken as USD), is skipped and
logged at WARNING with its record. Known Polygon data issues (duplicate split rows, dividends in
a pre-split basis) are left to `data.validation` and the adjustment checks downstream.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlparse

import pandas as pd
import pyarrow as pa
import urllib3
from polygon import RESTClient
from polygon.exceptions import BadResponse
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from kobe_pipelines import market_calendar
from kobe_pipelines.data import schema
from kobe_pipelines.errors import ConfigError, KobeError, RecordError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.polygon.io"
GROUPED_DAILY_PATH = "/v2/aggs/grouped/locale/us/market/stocks/{date}"
SPLITS_PATH = "/v3/reference/splits"
DIVIDENDS_PATH = "/v3/reference/dividends"
RETRY_STATUSES: frozenset[int] = frozenset({429, 499, 500, 502, 503, 504})
CASH_DIVIDEND_TYPES: frozenset[str] = frozenset({"CD", "SC", "LT", "ST"})
_OK_STATUSES = frozenset({"OK", "DELAYED"})


class PolygonError(KobeError):
    """A Polygon request failed for good (retries exhausted, an error answer, an unreadable body).

    `endpoint` is the request path, `request` what was asked (a session or a date range),
    `status` the last HTTP status when one is known.
    """

    def __init__(self, endpoint: str, request: str, problem: str, status: int | None = None):
        self.endpoint = endpoint
        self.request = request
        self.problem = problem
        self.status = status
        shown = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"Polygon {endpoint} ({request}) failed: {shown}{problem}")


class _SleepingRetry(Retry):
    """urllib3's `Retry`, waiting through an injectable `sleeper` (tests record instead of sleeping)."""

    def __init__(self, *args: Any, sleeper: Callable[[float], None] = time.sleep, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sleeper = sleeper

    def new(self, **kw: Any) -> _SleepingRetry:
        kw.setdefault("sleeper", self.sleeper)
        return super().new(**kw)

    def sleep_for_retry(self, response: Any) -> bool:
        try:
            delay = self.get_retry_after(response)  # seconds, already capped at retry_after_max
        except InvalidHeader:
            delay = None  # an unreadable Retry-After falls back to the backoff
        if delay:
            self.sleeper(delay)
            return True
        return False

    def sleep(self, response: Any = None) -> None:
        if self.respect_retry_after_header and response is not None and self.sleep_for_retry(response):
            return
        backoff = self.get_backoff_time()
        if backoff > 0:
            self.sleeper(backoff)


class PolygonProvider:
    """`MarketDataProvider` over Polygon.io (`name = "polygon"`); see the module docstring.

    `tickers` limits every table to that universe (None: every ticker Polygon returns).
    `max_retries` counts retries after the first attempt; `backoff`, `backoff_max`,
    `retry_after_max` and `timeout` are seconds; `page_limit` is results per page (Polygon's
    maximum is 1000); `sleep` waits between retries (time.sleep; tests pass a recorder).
    """

    name = "polygon"

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        *,
        tickers: Iterable[str] | None = None,
        max_retries: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        retry_after_max: float = 120.0,
        timeout: float = 30.0,
        page_limit: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if api_key is None or not api_key.strip():
            raise ConfigError("POLYGON_API_KEY", "is not set; the polygon provider needs a Polygon.io API key")
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not re.match(r"^https?://[^/\s]+", base):
            raise ConfigError("KOBE_POLYGON_BASE_URL", "must be an http(s) URL such as https://api.polygon.io", base_url)
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError("max_retries", "must be an integer >= 0", max_retries)
        for setting, value in (("backoff", backoff), ("backoff_max", backoff_max), ("retry_after_max", retry_after_max)):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(setting, "must be a finite number of seconds >= 0", value)
        if not math.isfinite(timeout) or timeout <= 0:
            raise ConfigError("timeout", "must be a finite number of seconds > 0", timeout)
        if not 1 <= page_limit <= 1000:
            raise ConfigError("page_limit", "must be between 1 and 1000 (Polygon's maximum)", page_limit)
        self.tickers: frozenset[str] | None = None
        if tickers is not None:
            self.tickers = frozenset(t.strip() for t in tickers if t and t.strip())
            if not self.tickers:
                raise ConfigError("tickers", "is empty; pass None for every ticker or name at least one")
        self.base_url = base
        self.max_retries = max_retries
        self.page_limit = page_limit
        self._api_key = api_key.strip()
        self._client = RESTClient(api_key=self._api_key, base=base, retries=max_retries, pagination=False)
        pool = self._client.client
        if not isinstance(pool, urllib3.PoolManager):  # the client changed how it holds its HTTP pool
            raise ConfigError("polygon-api-client", "has no urllib3 PoolManager at RESTClient.client; pin a 1.x release")
        pool.connection_pool_kw["retries"] = _SleepingRetry(
            total=max_retries,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            backoff_factor=backoff,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            respect_retry_after_header=True,
            raise_on_status=True,
            sleeper=sleep,
        )
        pool.connection_pool_kw["timeout"] = urllib3.Timeout(connect=timeout, read=timeout)

    def __repr__(self) -> str:  # never shows the key
        universe = "all" if self.tickers is None else f"{len(self.tickers)} tickers"
        return f"PolygonProvider(base_url={self.base_url!r}, universe={universe}, max_retries={self.max_retries})"

    # ---- bars -------------------------------------------------------------------------------

    def daily_bars_table(self, start: dt.date | str, end: dt.date | str) -> pa.Table:
        """`daily_bars` as an Arrow table in `schema.BARS_ARROW_SCHEMA`."""
        return schema.bars_table(self.daily_bars(start, end))

    def daily_bar_batches(self, start: dt.date | str, end: dt.date | str, rows: int = 1 << 20) -> list[pa.Table]:
        """`daily_bars_table` as one batch (the bars are in memory once fetched)."""
        return [self.daily_bars_table(start, end)]

    def daily_bars(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """Raw bars of every XNYS session in [start, end]; a session Polygon has no results for has no rows.

        Ask for completed sessions only (`market_calendar.last_completed_session`): Polygon's
        grouped daily of a session still trading is partial or empty.
        """
        frames = []
        sessions = market_calendar.sessions(start, end)
        for i, session in enumerate(sessions, start=1):
            frames.append(self._grouped_daily(session))
            if i % 50 == 0:
                log.info("polygon: grouped daily bars, %d of %d sessions fetched", i, len(sessions))
        frames = [frame for frame in frames if len(frame)]
        if not frames:
            return schema.empty_bars()
        return schema.normalize_bars(pd.concat(frames, ignore_index=True))

    def _grouped_daily(self, session: pd.Timestamp) -> pd.DataFrame:
        day = session.date().isoformat()
        path = GROUPED_DAILY_PATH.format(date=day)
        request = f"session {day}"
        body = self._call(path, request, lambda: self._client.get_grouped_daily_aggs(day, adjusted=False, raw=True))
        results = body.get("results")
        if results is None:
            if body.get("resultsCount"):
                raise PolygonError(path, request, f"resultsCount is {body['resultsCount']} but the answer has no results")
            log.warning("polygon: no grouped daily results for session %s (holiday or no data yet); no rows", day)
            return schema.empty_bars()
        items = _result_list(results, path, request)
        rows = []
        for n, item in enumerate(items):
            ticker = _required_text(item, "T", "polygon grouped daily bar", f"{day} result {n}")
            if self.tickers is not None and ticker not in self.tickers:
                continue
            rows.append((ticker, session, item.get("o"), item.get("h"), item.get("l"), item.get("c"), item.get("v"), item.get("t")))
        frame = pd.DataFrame(rows, columns=[*schema.BAR_COLUMNS, "t"])
        _check_bar_timestamps(frame, day)
        return frame.drop(columns="t")

    # ---- corporate actions ------------------------------------------------------------------

    def splits(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """Splits with execution_date in [start, end]; a 4-for-1 split is split_from=1, split_to=4."""
        lo, hi = _day(start), _day(end)
        if lo > hi:
            return schema.empty_splits()
        kind = "polygon split"
        rows = []
        for n, item in enumerate(self._pages(SPLITS_PATH, lo, hi, self._client.list_splits, "execution_date")):
            record = f"{SPLITS_PATH} result {n}"
            ticker = _required_text(item, "ticker", kind, record)
            day = _required_date(item, "execution_date", kind, f"{ticker} ({record})")
            if self._wanted(ticker, day, lo, hi, kind):
                rows.append((ticker, day, item.get("split_from"), item.get("split_to")))
        if not rows:
            return schema.empty_splits()
        return schema.normalize_splits(pd.DataFrame(rows, columns=list(schema.SPLIT_COLUMNS)))

    def dividends(self, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """Cash dividends (CD, SC, LT, ST; USD) with ex_dividend_date in [start, end], USD per share."""
        lo, hi = _day(start), _day(end)
        if lo > hi:
            return schema.empty_dividends()
        kind = "polygon dividend"
        rows = []
        for n, item in enumerate(self._pages(DIVIDENDS_PATH, lo, hi, self._client.list_dividends, "ex_dividend_date")):
            record = f"{DIVIDENDS_PATH} result {n}"
            ticker = _required_text(item, "ticker", kind, record)
            day = _required_date(item, "ex_dividend_date", kind, f"{ticker} ({record})")
            if not self._wanted(ticker, day, lo, hi, kind):
                continue
            dividend_type, currency = item.get("dividend_type"), item.get("currency")
            if dividend_type not in CASH_DIVIDEND_TYPES:
                log.warning("polygon: skipped dividend %s %s: dividend_type %r is not a cash type %s",
                            ticker, day, dividend_type, sorted(CASH_DIVIDEND_TYPES))
                continue
            if currency is not None and str(currency).upper() != "USD":
                log.warning("polygon: skipped dividend %s %s: paid in %s, not USD", ticker, day, currency)
                continue
            rows.append((ticker, day, item.get("cash_amount")))
        if not rows:
            return schema.empty_dividends()
        return schema.normalize_dividends(pd.DataFrame(rows, columns=list(schema.DIVIDEND_COLUMNS)))

    def _wanted(self, ticker: str, day: dt.date, lo: dt.date, hi: dt.date, kind: str) -> bool:
        if self.tickers is not None and ticker not in self.tickers:
            return False
        if not lo <= day <= hi:  # the server ignored the range filter: keep the contract, say so
            log.warning("polygon: dropped %s %s %s outside the requested %s..%s", kind, ticker, day, lo, hi)
            return False
        return True

    def _pages(
        self, path: str, lo: dt.date, hi: dt.date, list_call: Callable[..., Any], date_field: str
    ) -> Iterable[dict[str, Any]]:
        """Every result of a `list_*` endpoint for [lo, hi], page by page along `next_url`."""
        request = f"{date_field} {lo}..{hi}"
        first = {f"{date_field}_gte": lo.isoformat(), f"{date_field}_lte": hi.isoformat(), "limit": self.page_limit}
        body = self._call(path, request, lambda: list_call(**first, raw=True))
        seen: set[str] = set()
        page = 1
        while True:
            yield from _result_list(body.get("results", []), path, f"{request}, page {page}")
            next_url = body.get("next_url")
            if not next_url:
                return
            parsed = urlparse(str(next_url))
            if not parsed.path.endswith(path) or parsed.query in seen:
                problem = "next_url points at another endpoint" if not parsed.path.endswith(path) else "next_url repeats a cursor"
                raise PolygonError(path, f"{request}, page {page}", self._redact(f"{problem} ({parsed.path}?{parsed.query})"))
            seen.add(parsed.query)
            page += 1
            # The client's own iterator sends exactly this: the endpoint with next_url's query only.
            cursor = dict(parse_qsl(parsed.query, keep_blank_values=True))
            body = self._call(path, f"{request}, page {page}", lambda: list_call(params=dict(cursor), raw=True))

    # ---- HTTP -------------------------------------------------------------------------------

    def _call(self, path: str, request: str, fetch: Callable[[], Any]) -> dict[str, Any]:
        """One request (with the retries urllib3 does inside it), decoded; PolygonError otherwise."""
        try:
            response = fetch()
        except MaxRetryError as exc:
            reason = exc.reason
            found = re.search(r"too many (\d{3}) error responses", str(reason))
            status = int(found.group(1)) if found else None
            what = "error answers" if status else f"connection failures ({type(reason).__name__}: {reason})"
            problem = f"still failing after {self.max_retries} retries ({what}); nothing was returned"
            raise PolygonError(path, request, self._redact(problem), status) from None
        except BadResponse as exc:  # a non-retryable status (401, 403, 404...): the client keeps only the body
            raise PolygonError(path, request, self._redact(f"Polygon answered with an error: {str(exc)[:300]}")) from None
        except urllib3.exceptions.HTTPError as exc:
            raise PolygonError(path, request, self._redact(f"{type(exc).__name__}: {exc}")) from None
        try:
            body = json.loads(response.data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise PolygonError(path, request, "the answer is not JSON", response.status) from None
        if not isinstance(body, dict):
            raise PolygonError(path, request, "the answer is not a JSON object", response.status)
        if body.get("status") is not None and body["status"] not in _OK_STATUSES:
            detail = body.get("error") or body.get("message") or ""
            raise PolygonError(path, request, self._redact(f"answer status {body['status']!r} {detail}".strip()), response.status)
        return body

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "<redacted>")


def _day(value: dt.date | str) -> dt.date:
    return pd.Timestamp(value).date()


def _result_list(results: Any, path: str, request: str) -> list[dict[str, Any]]:
    if not isinstance(results, list) or not all(isinstance(item, dict) for item in results):
        raise PolygonError(path, request, "'results' is not a list of JSON objects")
    return results


def _required_text(item: dict[str, Any], field: str, kind: str, record: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or not value.strip():
        raise RecordError(kind, record, field, "is missing or not a non-empty string", value)
    return value.strip()


def _required_date(item: dict[str, Any], field: str, kind: str, record: str) -> dt.date:
    value = item.get(field)
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise RecordError(kind, record, field, "is missing or not a YYYY-MM-DD date", value) from None


def _check_bar_timestamps(frame: pd.DataFrame, day: str) -> None:
    """Each bar's `t` (Unix ms), read in America/New_York, must fall on the session asked for."""
    stamps = pd.to_numeric(frame["t"], errors="coerce")
    known = stamps.notna()
    if not known.any():
        return
    local = pd.to_datetime(stamps[known], unit="ms", utc=True).dt.tz_convert(market_calendar.EXCHANGE_TZ)
    wrong = local.dt.strftime("%Y-%m-%d") != day
    if wrong.any():
        first = wrong.idxmax()
        raise RecordError(
            "polygon grouped daily bar", f"{frame.at[first, 'symbol']} {day}", "t",
            f"is a timestamp on {local[first]:%Y-%m-%d %H:%M %Z}, not session {day} [{int(wrong.sum())} bars]",
            int(stamps[first]),
        )
