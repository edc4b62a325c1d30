"""Browser fixtures: Playwright driving Debian's Chromium against the app served from a thread
(or two app server processes), and screenshots of failing pages."""

import re
from pathlib import Path

import pytest

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, watched_page
from tests.support import ROOT, app_servers

ARTIFACTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture
def live_server(app):
    """The app served on a fresh free port from a thread, for the length of one test."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def two_servers(app):
    """Two app server processes on two ports, sharing this test's database and Redis."""
    with app_servers(app, 2) as urls:
        yield urls


@pytest.fixture(scope="session")
def playwright():
    """The run's one Playwright driver: its sync API allows only one per process at a time."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `bash scripts/ensure-services.sh --browser` (installs Debian's chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def chromium(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def new_page(chromium, live_server, request):
    """Open pages in fresh browser contexts (separate cookies, like separate people)."""
    contexts = []

    def open_page(base=None):
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        return watched_page(context, base or live_server)

    request.node.browser_contexts = contexts
    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for number, context in enumerate(getattr(item, "browser_contexts", [])):
        for index, page in enumerate(context.pages):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", item.nodeid) + f"-{number}-{index}"
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                (ARTIFACTS / f"{name}.html").write_text(page.content())
            except Exception as error:  # a dead page must not hide the test's own failure
                print(f"could not save a screenshot of {name}: {error}")
                continue
            print(f"\nscreenshot of the failing page: {ARTIFACTS / name}.png")
            report.sections.append(("screenshot", str(ARTIFACTS / f"{name}.png")))
