"""The shipped real-data sample is the file its README describes, byte for byte."""

import hashlib

import pandas as pd

from kobe_pipelines_tests.testdata import QUANDL_WIKI_2014_CSV, QUANDL_WIKI_2014_DIR, QUANDL_WIKI_2014_SHA256


def test_quandl_sample_when_hashed_then_matches_the_sha256_its_readme_states():
    digest = hashlib.sha256(QUANDL_WIKI_2014_CSV.read_bytes()).hexdigest()
    assert digest == QUANDL_WIKI_2014_SHA256
    assert QUANDL_WIKI_2014_SHA256 in (QUANDL_WIKI_2014_DIR / "README.md").read_text()


def test_quandl_sample_when_read_then_has_the_rows_and_events_its_readme_counts():
    frame = pd.read_csv(QUANDL_WIKI_2014_CSV)
    # README: 916 data rows; AAPL, BRK_A, MSFT 252 rows each, ZEN 160; 1 split, 8 cash dividends.
    assert len(frame) == 916
    assert frame.groupby("ticker").size().to_dict() == {"AAPL": 252, "BRK_A": 252, "MSFT": 252, "ZEN": 160}
    assert (frame["split_ratio"] != 1.0).sum() == 1
    assert (frame["ex-dividend"] > 0).sum() == 8
