"""A pytest plugin: a run that skips any test fails.

A skipped test is a check that did not run, so a clean clone's run must skip nothing: each skip
is reported as a failure naming the test and the skip's reason. The one way out is a test marked
`@pytest.mark.skip_allowed(reason="...")`, for a check this machine cannot make at all (the
README's Tests section lists them); the reason must say why. Expected failures (xfail) are not
skips and are left alone.
"""

from __future__ import annotations

import pytest

SKIP_ALLOWED = "skip_allowed"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{SKIP_ALLOWED}(reason): this test may skip where the machine cannot make "
                                       "the check at all, for the reason given (README, Tests)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        why = skip_not_allowed(item, report)
        if why is not None:
            report.outcome = "failed"
            report.longrepr = why
    return report


def skip_not_allowed(item: pytest.Item, report: pytest.TestReport) -> str | None:
    """Why this skip fails the run, or None when the test is marked `skip_allowed` with a reason."""
    marker = item.get_closest_marker(SKIP_ALLOWED)
    reason = (marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")) if marker else ""
    if marker is not None and str(reason).strip():
        return None
    longrepr = report.longrepr
    skipped_because = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    skipped_because = skipped_because.removeprefix("Skipped: ")
    if marker is not None:
        return f"{item.nodeid} is marked {SKIP_ALLOWED} without a reason, and skipped: {skipped_because}"
    return (f"{item.nodeid} skipped ({skipped_because}); a run must skip nothing: make the check run here, or "
            f"mark it @pytest.mark.{SKIP_ALLOWED}(reason=...) and list it in the README's Tests section")
