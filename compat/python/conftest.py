"""pytest wiring: clear the HTTP recorder before each test and print what was sent on failure."""

from __future__ import annotations

import pytest

import forge_compat


@pytest.fixture(autouse=True)
def _record_requests():
    forge_compat.EXCHANGES.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and forge_compat.EXCHANGES:
        report.sections.append(("requests sent", forge_compat.describe_exchanges()))


def pytest_sessionfinish(session, exitstatus):
    forge_compat.close_db()
