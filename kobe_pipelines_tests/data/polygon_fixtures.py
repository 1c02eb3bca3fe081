"""Polygon.io JSON answers, shaped as the real API sends them, for the loopback-server tests.

Field names follow Polygon's documentation: grouped daily results carry T (ticker), v (volume),
vw (VWAP), o, c, h, l, t (Unix ms of the bar's window start, midnight America/New_York) and n
(trades); reference endpoints answer {"results": [...], "status": "OK", "request_id": ...,
"next_url": ...} with next_url only when another page exists.
"""

from __future__ import annotations

from typing import Any

API_KEY = "kobe-test-key-7Qx93"

GROUPED_PATH = "/v2/aggs/grouped/locale/us/market/stocks/{day}"
SPLITS_PATH = "/v3/reference/splits"
DIVIDENDS_PATH = "/v3/reference/dividends"

# Query strings exactly as polygon-api-client 1.16 builds them (it adds its defaults for
# locale, market_type and include_otc); the key is never in the query.
GROUPED_QUERY = {"adjusted": "false", "locale": "us", "market_type": "stocks", "include_otc": "false"}
AUTH_HEADER = {"Authorization": f"Bearer {API_KEY}"}

# Midnight America/New_York of each session, as Unix milliseconds, worked out by hand:
# 2024-01-01T00:00Z is 1_704_067_200 s; EST is UTC-5, EDT UTC-4.
MIDNIGHT_ET_MS = {
    "2024-01-03": 1_704_258_000_000,  # 1_704_067_200 + 2 days (172_800) + 5 h (18_000)
    "2024-01-04": 1_704_344_400_000,  # + 1 day
    "2024-07-03": 1_719_979_200_000,  # 2024-07-03T04:00Z: 1_704_067_200 + 184 days (15_897_600) + 4 h (14_400)
    "2024-07-05": 1_720_152_000_000,  # + 2 days
}


def bar(ticker: str, day: str, o: float, h: float, low: float, c: float, v: float) -> dict[str, Any]:
    """One grouped-daily result; vw and n are present as Polygon sends them (and ignored)."""
    return {"T": ticker, "v": v, "vw": round((h + low + c) / 3, 4), "o": o, "c": c, "h": h, "l": low,
            "t": MIDNIGHT_ET_MS[day], "n": 1234}


def grouped_daily(bars: list[dict[str, Any]]) -> dict[str, Any]:
    return {"queryCount": len(bars), "resultsCount": len(bars), "adjusted": False, "results": bars,
            "status": "OK", "request_id": "6a7e466379af0a71039d60cc78e72282"}


def grouped_daily_empty() -> dict[str, Any]:
    """A day without trading data: Polygon answers OK with a zero count and no "results" key."""
    return {"queryCount": 0, "resultsCount": 0, "adjusted": False, "status": "OK",
            "request_id": "b3a1f1a7e0d44c7f9e2b6d0c1e5a9f11"}


def split(ticker: str, execution_date: str, split_from: float, split_to: float) -> dict[str, Any]:
    return {"id": f"E{ticker}{execution_date.replace('-', '')}", "ticker": ticker,
            "execution_date": execution_date, "split_from": split_from, "split_to": split_to}


def dividend(ticker: str, ex_date: str, cash: float, dividend_type: str = "CD", currency: str = "USD") -> dict[str, Any]:
    return {"id": f"E{ticker}{ex_date.replace('-', '')}{dividend_type}", "ticker": ticker, "cash_amount": cash,
            "currency": currency, "declaration_date": ex_date, "dividend_type": dividend_type,
            "ex_dividend_date": ex_date, "frequency": 4, "pay_date": ex_date, "record_date": ex_date}


def page(results: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"results": results, "status": "OK", "request_id": "31d59dda72f4bd2b9b4c1c16a1f7f5a0"}
    if next_url is not None:
        body["next_url"] = next_url
    return body


def error_body(message: str) -> dict[str, Any]:
    return {"status": "ERROR", "request_id": "0d1e2c3b4a5968778695a4b3c2d1e0f9", "error": message}


def serve_flat_market(httpserver, monkeypatch, symbol: str, closes: dict[str, float],
                      splits: list[dict[str, Any]] = (), dividends: list[dict[str, Any]] = ()) -> None:
    """Point POLYGON_API_KEY / KOBE_POLYGON_BASE_URL at `httpserver`, serving one flat bar of `symbol`
    per session (open = high = low = close, volume 1,000) and the given splits and dividends."""
    monkeypatch.setenv("POLYGON_API_KEY", API_KEY)
    monkeypatch.setenv("KOBE_POLYGON_BASE_URL", httpserver.url_for("/"))
    for day, close in closes.items():
        httpserver.expect_request(GROUPED_PATH.format(day=day)).respond_with_json(
            grouped_daily([bar(symbol, day, close, close, close, close, 1000)]))
    httpserver.expect_request(SPLITS_PATH).respond_with_json(page(list(splits)))
    httpserver.expect_request(DIVIDENDS_PATH).respond_with_json(page(list(dividends)))
