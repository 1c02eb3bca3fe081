"""What every table the command line prints must be: within 100 columns, numbers as numbers."""

from __future__ import annotations

import re

UNREADABLE = re.compile(r"np\.\w+\(|\bnan\b|\bNaT\b|\bNone\b|<NA>")


def assert_readable(output: str) -> None:
    """No line over 100 columns; no `np.float64(...)`, `nan`, `NaT`, `None` or `<NA>` text."""
    wide = [line for line in output.splitlines() if len(line) > 100]
    assert wide == [], f"{len(wide)} line(s) over 100 columns, e.g. {wide[0]!r}"
    found = UNREADABLE.findall(output)
    assert found == [], f"unreadable values {found} in:\n{output}"
