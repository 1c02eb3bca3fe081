"""Test data shipped with the repository, so that every clone and CI run the real-data checks.

`quandl_wiki_2014/`: a real Quandl WIKI 2014 sample (raw bars, splits, dividends and the vendor's
adjusted prices); its README.md gives the provenance, the sha256 and the vendor's convention.
"""

from pathlib import Path

TESTDATA_DIR = Path(__file__).resolve().parent
QUANDL_WIKI_2014_DIR = TESTDATA_DIR / "quandl_wiki_2014"
QUANDL_WIKI_2014_CSV = QUANDL_WIKI_2014_DIR / "quandl_wiki_sample_2014.csv"
# From quandl_wiki_2014/README.md (the file as unzipped from zipline's QUANDL_ARCHIVE.zip).
QUANDL_WIKI_2014_SHA256 = "78bdc9ce3fdcb67841693d6142ffa84e6e86791edb9df34a01a236c76328edfc"


def quandl_wiki_2014_inputs():
    """(bars, splits, dividends) of the sample in the lake's schema, from the vendor's raw columns:
    split_ratio 7.0 means 7 new shares per old one (split_from=1, split_to=7); ex-dividend is USD
    per share of that day."""
    import pandas as pd

    from kobe_pipelines.data import schema

    frame = pd.read_csv(QUANDL_WIKI_2014_CSV)
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    bars = schema.normalize_bars(frame.rename(columns={"ticker": "symbol"}))
    split_rows = frame.loc[frame["split_ratio"] != 1.0]
    splits = schema.normalize_splits(pd.DataFrame({"symbol": split_rows["ticker"], "execution_date": split_rows["date"],
                                                   "split_from": 1.0, "split_to": split_rows["split_ratio"]}))
    div_rows = frame.loc[frame["ex-dividend"] > 0]
    dividends = schema.normalize_dividends(pd.DataFrame({"symbol": div_rows["ticker"], "ex_dividend_date": div_rows["date"],
                                                         "cash_amount": div_rows["ex-dividend"]}))
    return bars, splits, dividends
