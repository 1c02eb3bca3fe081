"""The rules every stored bar and applied corporate action obeys, in one place.

`validation` enforces the bar rules and `event_checks` the action rules inside every freeze (the CLI's
`kobe lake freeze` and the Dagster assets both freeze through `Lake.prepare`); `quality` states
the same rules as Great Expectations for the Dagster asset checks. Each rule is written once,
here, and read by all three.

Bars:
- a symbol is a ticker: `TICKER_PATTERN` (upper-case letters and digits, then also lower-case
  letters and `.`, `_`, `-`, `/` for share classes and preferreds: BRK.B, BRK_A, BF-B, BACpB), at most
  `MAX_SYMBOL_LENGTH` characters. Surrounding spaces are trimmed before the rule applies (" AAA "
  is AAA); a space inside, a newline, a NUL or any other character fails it;
- a date is an XNYS session (no weekend, no exchange holiday) and not after the last completed
  session. Before the calendar's first session (`market_calendar`) only weekends are refused;
- volume is a whole number of shares in [0, `MAX_VOLUME`].

Corporate actions, judged on the raw closes around each applied event (the last bar before its
session and the first on or after it):
- no unexplained jump: on the session of each applied split or dividend, the adjusted
  close-to-close log return stays within +-`MAX_ABS_EVENT_LOG_RETURN` in the split-adjusted and
  the total-return views (0.4: about -33%/+49%). A 1:1,000,000 split over flat raw prices fails;
- no split listed twice: two splits of one symbol within `REPEATED_SPLIT_SESSIONS` sessions of
  which only one moves the raw prices by its ratio are refused (the second listing of one split).
"""

from __future__ import annotations

import re

TICKER_PATTERN = r"[A-Z0-9][A-Za-z0-9._/-]*"
TICKER = re.compile(TICKER_PATTERN)
MAX_SYMBOL_LENGTH = 16
MAX_VOLUME = 1e12  # shares in one session: far above any listed stock's record, far below float64's exact integers
MAX_ABS_EVENT_LOG_RETURN = 0.4
REPEATED_SPLIT_SESSIONS = 10


def symbol_problem(symbol: object) -> str | None:
    """Why `symbol` (already trimmed) is not a ticker, or None when it is one."""
    if not isinstance(symbol, str) or not symbol:
        return "must be a non-empty ticker"
    if len(symbol) > MAX_SYMBOL_LENGTH:
        return f"must be a ticker of at most {MAX_SYMBOL_LENGTH} characters (got {len(symbol)})"
    if TICKER.fullmatch(symbol) is None:
        return f"must be a ticker matching {TICKER_PATTERN} (no spaces, newlines or control characters)"
    return None
