"""PolygonProvider against a loopback HTTP server speaking Polygon's JSON (pytest-httpserver).

The real polygon-api-client RESTClient and urllib3 do every request; nothing of theirs is
patched. Waits between retries go through the provider's `sleep` hook into a list, so the tests
see the delays urllib3 asked for without sleeping.
"""

from __future__ import annotations

import logging
import socket
import traceback

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from kobe_pipelines.data import schema
from kobe_pipelines.data.providers.base import MarketDataProvider
from kobe_pipelines.data.providers.polygon import PolygonError, PolygonProvider
from kobe_pipelines.errors import ConfigError, RecordError
from kobe_pipelines.settings import MarketDataSettings
from kobe_pipelines_tests.data import polygon_fixtures as fx

BACKOFF = 0.001  # seconds; urllib3 waits 0, 2*BACKOFF, 4*BACKOFF... between retries
MAX_RETRIES = 3


@pytest.fixture()
def server(httpserver: HTTPServer) -> HTTPServer:
    # 418 for a request no handler expects: not a retried status, so a stray request fails fast.
    httpserver.no_handler_status_code = 418
    return httpserver


@pytest.fixture()
def sleeps() -> list[float]:
    return []


@pytest.fixture()
def provider(server: HTTPServer, sleeps: list[float]) -> PolygonProvider:
    return PolygonProvider(fx.API_KEY, server.url_for("/"), max_retries=MAX_RETRIES, backoff=BACKOFF, sleep=sleeps.append)


def _bars(rows: list[tuple[str, str, float, float, float, float, float]]) -> pd.DataFrame:
    return schema.normalize_bars(pd.DataFrame(rows, columns=list(schema.BAR_COLUMNS)))


def _expect_grouped(server: HTTPServer, day: str, body: dict, status: int = 200, headers: dict | None = None) -> None:
    server.expect_ordered_request(
        fx.GROUPED_PATH.format(day=day), method="GET", query_string=fx.GROUPED_QUERY, headers=fx.AUTH_HEADER
    ).respond_with_json(body, status=status, headers=headers)


def _assert_key_hidden(exc: BaseException, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> None:
    shown = "".join(traceback.format_exception(exc)) + repr(exc) + caplog.text + "".join(capsys.readouterr())
    assert fx.API_KEY not in shown


# ---- construction ---------------------------------------------------------------------------


def test_init_when_api_key_missing_then_config_error_names_polygon_api_key():
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        PolygonProvider(None)
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        PolygonProvider("   ")


def _from_settings(**overrides) -> PolygonProvider:
    """The provider as the command line and the assets build it: from the settings layer."""
    settings = MarketDataSettings.from_env()
    return PolygonProvider(settings.polygon_api_key, settings.polygon_base_url, **overrides)


def test_settings_when_key_unset_then_config_error_names_polygon_api_key():
    # the project conftest removes POLYGON_API_KEY for every test
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        _from_settings()


def test_settings_when_variables_set_after_import_then_the_provider_uses_them(server, monkeypatch):
    monkeypatch.setenv("POLYGON_API_KEY", fx.API_KEY)
    monkeypatch.setenv("KOBE_POLYGON_BASE_URL", server.url_for("/"))
    _expect_grouped(server, "2024-01-03", fx.grouped_daily_empty())

    provider = _from_settings(max_retries=0)
    bars = provider.daily_bars("2024-01-03", "2024-01-03")

    assert provider.name == "polygon" and isinstance(provider, MarketDataProvider)
    assert bars.empty and list(bars.columns) == list(schema.BAR_COLUMNS)
    server.check_assertions()  # the one request reached the loopback server with the env key


def test_repr_when_built_then_does_not_show_the_key(provider):
    assert fx.API_KEY not in repr(provider) and "polygon" in repr(provider).lower()


@pytest.mark.parametrize(("kwargs", "setting"), [
    ({"base_url": "ftp://example.com"}, "KOBE_POLYGON_BASE_URL"),
    ({"max_retries": -1}, "max_retries"),
    ({"backoff": float("nan")}, "backoff"),
    ({"tickers": []}, "tickers"),
    ({"page_limit": 5000}, "page_limit"),
])
def test_init_when_setting_invalid_then_config_error_names_it(kwargs, setting):
    with pytest.raises(ConfigError, match=setting):
        PolygonProvider(fx.API_KEY, **kwargs)


# ---- grouped daily bars ---------------------------------------------------------------------


def test_daily_bars_when_two_sessions_then_one_unadjusted_call_each_with_key_and_session_dates(server, provider):
    # 2024-01-03 (Wed) and 2024-01-04 (Thu) are XNYS sessions: exactly two calls, in order.
    _expect_grouped(server, "2024-01-03", fx.grouped_daily([
        fx.bar("AAPL", "2024-01-03", 184.22, 185.88, 183.43, 184.25, 58_414_460),
        fx.bar("MSFT", "2024-01-03", 369.01, 373.26, 368.51, 370.60, 23_083_465),
    ]))
    _expect_grouped(server, "2024-01-04", fx.grouped_daily([
        fx.bar("AAPL", "2024-01-04", 182.15, 183.09, 180.88, 181.91, 71_983_570),
    ]))

    bars = provider.daily_bars("2024-01-03", "2024-01-04")

    # T/o/h/l/c/v copied field for field; date = the session asked for (vw, t, n dropped)
    expected = _bars([
        ("AAPL", "2024-01-03", 184.22, 185.88, 183.43, 184.25, 58_414_460.0),
        ("MSFT", "2024-01-03", 369.01, 373.26, 368.51, 370.60, 23_083_465.0),
        ("AAPL", "2024-01-04", 182.15, 183.09, 180.88, 181.91, 71_983_570.0),
    ])
    pd.testing.assert_frame_equal(bars, expected)
    server.check_assertions()
    assert all(request.args.get("adjusted") == "false" and "apiKey" not in request.args for request, _ in server.log)


def test_daily_bars_when_range_spans_a_holiday_then_asks_only_for_sessions(server, provider):
    # 2024-07-04 (Independence Day) is no session: the calls are for 07-03 and 07-05 only;
    # a request for 07-04 would find no handler and fail the test.
    _expect_grouped(server, "2024-07-03", fx.grouped_daily([fx.bar("AAPL", "2024-07-03", 220.0, 221.55, 219.03, 221.55, 37e6)]))
    _expect_grouped(server, "2024-07-05", fx.grouped_daily([fx.bar("AAPL", "2024-07-05", 221.65, 226.45, 221.65, 226.34, 60e6)]))

    bars = provider.daily_bars("2024-07-03", "2024-07-05")

    assert [str(d.date()) for d in bars["date"]] == ["2024-07-03", "2024-07-05"]
    server.check_assertions()
    assert [request.path for request, _ in server.log] == [
        "/v2/aggs/grouped/locale/us/market/stocks/2024-07-03",
        "/v2/aggs/grouped/locale/us/market/stocks/2024-07-05",
    ]


def test_daily_bars_when_a_session_has_no_results_then_no_rows_for_it_and_no_error(server, provider):
    _expect_grouped(server, "2024-01-03", fx.grouped_daily_empty())  # resultsCount 0, no "results" key
    _expect_grouped(server, "2024-01-04", fx.grouped_daily([fx.bar("AAPL", "2024-01-04", 182.15, 183.09, 180.88, 181.91, 7e7)]))

    bars = provider.daily_bars("2024-01-03", "2024-01-04")

    pd.testing.assert_frame_equal(bars, _bars([("AAPL", "2024-01-04", 182.15, 183.09, 180.88, 181.91, 7e7)]))
    server.check_assertions()


def test_daily_bars_when_only_session_is_empty_then_empty_frame_with_bar_columns(server, provider):
    _expect_grouped(server, "2024-01-03", fx.grouped_daily_empty())

    bars = provider.daily_bars("2024-01-03", "2024-01-03")

    pd.testing.assert_frame_equal(bars, schema.empty_bars())


def test_daily_bars_when_tickers_given_then_keeps_only_the_universe(server, sleeps):
    provider = PolygonProvider(fx.API_KEY, server.url_for("/"), tickers=["MSFT"], backoff=BACKOFF, sleep=sleeps.append)
    _expect_grouped(server, "2024-01-03", fx.grouped_daily([
        fx.bar("AAPL", "2024-01-03", 184.22, 185.88, 183.43, 184.25, 58_414_460),
        fx.bar("MSFT", "2024-01-03", 369.01, 373.26, 368.51, 370.60, 23_083_465),
    ]))

    bars = provider.daily_bars("2024-01-03", "2024-01-03")

    assert bars["symbol"].tolist() == ["MSFT"]


def test_daily_bars_when_bar_timestamp_is_another_day_then_record_error_names_bar_and_field(server, provider):
    wrong = fx.bar("AAPL", "2024-01-03", 184.22, 185.88, 183.43, 184.25, 58_414_460)
    wrong["t"] = fx.MIDNIGHT_ET_MS["2024-01-04"]  # a bar of the next day served as 2024-01-03's
    _expect_grouped(server, "2024-01-03", fx.grouped_daily([wrong]))

    with pytest.raises(RecordError, match=r"AAPL 2024-01-03: field 't'"):
        provider.daily_bars("2024-01-03", "2024-01-03")


# ---- retries and failures -------------------------------------------------------------------


def test_daily_bars_when_429_with_retry_after_then_waits_that_long_and_succeeds(server, provider, sleeps):
    _expect_grouped(server, "2024-01-03", fx.error_body("You've exceeded the maximum requests per minute"),
                    status=429, headers={"Retry-After": "7"})
    _expect_grouped(server, "2024-01-03", fx.grouped_daily([fx.bar("AAPL", "2024-01-03", 184.22, 185.88, 183.43, 184.25, 5e7)]))

    bars = provider.daily_bars("2024-01-03", "2024-01-03")

    assert sleeps == [7]  # the server's Retry-After, in seconds, not the backoff
    assert bars["symbol"].tolist() == ["AAPL"]
    server.check_assertions()


def test_daily_bars_when_429_without_retry_after_then_exponential_backoff_and_succeeds(server, provider, sleeps):
    for _ in range(3):
        _expect_grouped(server, "2024-01-03", fx.error_body("You've exceeded the maximum requests per minute"), status=429)
    _expect_grouped(server, "2024-01-03", fx.grouped_daily([fx.bar("AAPL", "2024-01-03", 184.22, 185.88, 183.43, 184.25, 5e7)]))

    bars = provider.daily_bars("2024-01-03", "2024-01-03")

    # urllib3: no wait before the first retry, then BACKOFF * 2**(n-1) after the n-th failure
    assert sleeps == pytest.approx([0.002, 0.004])
    assert len(bars) == 1 and len(server.log) == 4


def test_daily_bars_when_500_exhausts_retries_then_polygon_error_names_session_and_status_not_key(
    server, provider, sleeps, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    server.expect_request(fx.GROUPED_PATH.format(day="2024-01-03")).respond_with_json(fx.error_body("internal"), status=500)

    with pytest.raises(PolygonError) as raised:
        provider.daily_bars("2024-01-03", "2024-01-03")

    error = raised.value
    assert error.status == 500
    assert "/v2/aggs/grouped/locale/us/market/stocks/2024-01-03" in str(error) and "session 2024-01-03" in str(error)
    assert "HTTP 500" in str(error) and f"{MAX_RETRIES} retries" in str(error)
    assert len(server.log) == MAX_RETRIES + 1  # the first attempt and three retries
    assert sleeps == pytest.approx([0.002, 0.004])
    _assert_key_hidden(error, caplog, capsys)


def test_daily_bars_when_a_later_session_fails_then_raises_rather_than_returning_partial_bars(server, provider):
    _expect_grouped(server, "2024-01-03", fx.grouped_daily([fx.bar("AAPL", "2024-01-03", 184.22, 185.88, 183.43, 184.25, 5e7)]))
    server.expect_request(fx.GROUPED_PATH.format(day="2024-01-04")).respond_with_json(fx.error_body("down"), status=503)

    with pytest.raises(PolygonError, match="session 2024-01-04") as raised:
        provider.daily_bars("2024-01-03", "2024-01-04")

    assert raised.value.status == 503


def test_daily_bars_when_401_then_no_retry_and_error_shows_polygon_message(server, provider, sleeps, caplog, capsys):
    server.expect_request(fx.GROUPED_PATH.format(day="2024-01-03")).respond_with_json(fx.error_body("Unknown API Key"), status=401)

    with pytest.raises(PolygonError, match="Unknown API Key") as raised:
        provider.daily_bars("2024-01-03", "2024-01-03")

    assert len(server.log) == 1 and sleeps == []
    _assert_key_hidden(raised.value, caplog, capsys)


def test_daily_bars_when_error_body_echoes_the_key_then_message_redacts_it(server, provider, caplog, capsys):
    body = fx.error_body(f"API key {fx.API_KEY} is not entitled to this data")
    server.expect_request(fx.GROUPED_PATH.format(day="2024-01-03")).respond_with_json(body, status=403)

    with pytest.raises(PolygonError, match="<redacted> is not entitled") as raised:
        provider.daily_bars("2024-01-03", "2024-01-03")

    _assert_key_hidden(raised.value, caplog, capsys)


def test_daily_bars_when_server_unreachable_then_polygon_error_after_retries(sleeps):
    with socket.socket() as sock:  # a loopback port with nothing listening once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = PolygonProvider(fx.API_KEY, f"http://127.0.0.1:{port}", max_retries=2, backoff=BACKOFF, sleep=sleeps.append)

    with pytest.raises(PolygonError, match="connection failures") as raised:
        provider.daily_bars("2024-01-03", "2024-01-03")

    assert raised.value.status is None and sleeps == pytest.approx([0.002])


# ---- corporate actions ----------------------------------------------------------------------


def _expect_page(server: HTTPServer, path: str, query: dict, body: dict | str, status: int = 200) -> None:
    handler = server.expect_ordered_request(path, method="GET", query_string=query, headers=fx.AUTH_HEADER)
    if isinstance(body, str):
        handler.respond_with_data(body, status=status, content_type="text/html")
    else:
        handler.respond_with_json(body, status=status)


SPLIT_QUERY = {"execution_date.gte": "2024-01-01", "execution_date.lte": "2024-06-30", "limit": "1000"}
DIVIDEND_QUERY = {"ex_dividend_date.gte": "2024-01-01", "ex_dividend_date.lte": "2024-06-30", "limit": "1000"}


def test_splits_when_next_url_then_requests_the_cursor_page_with_key_and_maps_fields(server, provider):
    next_url = server.url_for(f"{fx.SPLITS_PATH}?cursor=YXA9MjAyNC0wNi0xMA")
    _expect_page(server, fx.SPLITS_PATH, SPLIT_QUERY, fx.page([fx.split("NVDA", "2024-06-10", 1, 10)], next_url=next_url))
    _expect_page(server, fx.SPLITS_PATH, {"cursor": "YXA9MjAyNC0wNi0xMA"}, fx.page([fx.split("XYZ", "2024-03-04", 10, 1)]))

    splits = provider.splits("2024-01-01", "2024-06-30")

    # a 10-for-1 forward split is split_from=1, split_to=10; a 1-for-10 reverse split 10 -> 1
    expected = schema.normalize_splits(pd.DataFrame(
        [("NVDA", "2024-06-10", 1.0, 10.0), ("XYZ", "2024-03-04", 10.0, 1.0)], columns=list(schema.SPLIT_COLUMNS)))
    pd.testing.assert_frame_equal(splits, expected)
    server.check_assertions()  # both pages requested, in order, each with the Authorization header


def test_dividends_when_next_url_then_follows_it_and_keeps_the_four_cash_types(server, provider):
    next_url = server.url_for(f"{fx.DIVIDENDS_PATH}?cursor=cD0y")
    _expect_page(server, fx.DIVIDENDS_PATH, DIVIDEND_QUERY, fx.page([
        fx.dividend("AAPL", "2024-02-09", 0.24, "CD"),
        fx.dividend("COST", "2024-01-11", 15.00, "SC"),
    ], next_url=next_url))
    _expect_page(server, fx.DIVIDENDS_PATH, {"cursor": "cD0y"}, fx.page([
        fx.dividend("VFIAX", "2024-03-20", 0.12, "LT"),
        fx.dividend("VFIAX", "2024-03-20", 0.03, "ST"),
    ]))

    dividends = provider.dividends("2024-01-01", "2024-06-30")

    expected = schema.normalize_dividends(pd.DataFrame(
        [("AAPL", "2024-02-09", 0.24), ("COST", "2024-01-11", 15.00), ("VFIAX", "2024-03-20", 0.12), ("VFIAX", "2024-03-20", 0.03)],
        columns=list(schema.DIVIDEND_COLUMNS)))
    pd.testing.assert_frame_equal(dividends, expected)
    server.check_assertions()


def test_dividends_when_not_usd_or_not_a_cash_type_then_skipped_with_warning(server, provider, caplog):
    caplog.set_level(logging.WARNING, logger="kobe_pipelines.data.providers.polygon")
    _expect_page(server, fx.DIVIDENDS_PATH, DIVIDEND_QUERY, fx.page([
        fx.dividend("AAPL", "2024-02-09", 0.24, "CD"),
        fx.dividend("SHOP", "2024-02-12", 0.50, "CD", currency="CAD"),
        fx.dividend("ODD", "2024-02-13", 1.00, "XX"),
    ]))

    dividends = provider.dividends("2024-01-01", "2024-06-30")

    assert dividends["symbol"].tolist() == ["AAPL"]
    assert "SHOP 2024-02-12: paid in CAD" in caplog.text and "ODD 2024-02-13: dividend_type 'XX'" in caplog.text


def test_splits_and_dividends_when_tickers_given_then_only_the_universe(server, sleeps):
    provider = PolygonProvider(fx.API_KEY, server.url_for("/"), tickers=["AAPL"], backoff=BACKOFF, sleep=sleeps.append)
    _expect_page(server, fx.SPLITS_PATH, SPLIT_QUERY, fx.page([fx.split("NVDA", "2024-06-10", 1, 10)]))
    _expect_page(server, fx.DIVIDENDS_PATH, DIVIDEND_QUERY, fx.page([
        fx.dividend("AAPL", "2024-02-09", 0.24), fx.dividend("MSFT", "2024-02-14", 0.75)]))

    splits = provider.splits("2024-01-01", "2024-06-30")
    dividends = provider.dividends("2024-01-01", "2024-06-30")

    pd.testing.assert_frame_equal(splits, schema.empty_splits())
    assert dividends["symbol"].tolist() == ["AAPL"]


def test_splits_when_cursor_page_exhausts_retries_then_raises_naming_the_page(server, provider, caplog, capsys):
    _expect_page(server, fx.SPLITS_PATH, SPLIT_QUERY,
                 fx.page([fx.split("NVDA", "2024-06-10", 1, 10)], next_url=server.url_for(f"{fx.SPLITS_PATH}?cursor=c2")))
    server.expect_request(fx.SPLITS_PATH, query_string={"cursor": "c2"}).respond_with_json(fx.error_body("boom"), status=502)

    with pytest.raises(PolygonError, match=r"execution_date 2024-01-01\.\.2024-06-30, page 2") as raised:
        provider.splits("2024-01-01", "2024-06-30")

    assert raised.value.status == 502
    _assert_key_hidden(raised.value, caplog, capsys)


def test_dividends_when_cursor_page_is_not_json_then_raises_instead_of_stopping_short(server, provider):
    # polygon-api-client's own iterator would end here quietly with page 1's rows only
    _expect_page(server, fx.DIVIDENDS_PATH, DIVIDEND_QUERY,
                 fx.page([fx.dividend("AAPL", "2024-02-09", 0.24)], next_url=server.url_for(f"{fx.DIVIDENDS_PATH}?cursor=c2")))
    _expect_page(server, fx.DIVIDENDS_PATH, {"cursor": "c2"}, "<html>gateway hiccup</html>")

    with pytest.raises(PolygonError, match="page 2.*not JSON"):
        provider.dividends("2024-01-01", "2024-06-30")


def test_splits_when_next_url_repeats_a_cursor_then_raises_instead_of_looping(server, provider):
    looping = server.url_for(f"{fx.SPLITS_PATH}?cursor=same")
    _expect_page(server, fx.SPLITS_PATH, SPLIT_QUERY, fx.page([fx.split("NVDA", "2024-06-10", 1, 10)], next_url=looping))
    _expect_page(server, fx.SPLITS_PATH, {"cursor": "same"}, fx.page([fx.split("XYZ", "2024-03-04", 10, 1)], next_url=looping))

    with pytest.raises(PolygonError, match="repeats a cursor"):
        provider.splits("2024-01-01", "2024-06-30")


def test_splits_when_a_result_lacks_ticker_then_record_error_names_the_field(server, provider):
    nameless = fx.split("NVDA", "2024-06-10", 1, 10)
    del nameless["ticker"]
    _expect_page(server, fx.SPLITS_PATH, SPLIT_QUERY, fx.page([nameless]))

    with pytest.raises(RecordError, match=r"polygon split /v3/reference/splits result 0: field 'ticker'"):
        provider.splits("2024-01-01", "2024-06-30")


def test_splits_when_start_after_end_then_empty_without_a_request(server, provider):
    pd.testing.assert_frame_equal(provider.splits("2024-06-30", "2024-01-01"), schema.empty_splits())
    assert server.log == []
