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
