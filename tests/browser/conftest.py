"""A real server and a real browser: uvicorn on a free port over a fresh demo store, driven by
Debian's chromium through Playwright. Skips cleanly where either is missing (the Playwright
browser download does not work everywhere, so the system chromium is used).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = os.environ.get("COMMONGROUND_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sync_playwright_api() -> Any:
    module = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}")
    return module


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, sync_playwright_api: Any, store_database) -> Iterator[dict[str, Any]]:
    """The API and the web app, as `commonground serve` runs them, over the demo store."""
    import uvicorn

    from commonground import bootstrap
    from commonground.api.app import create_app
    from commonground.demo import build_demo
    from commonground.web.app import mount_web

    home = tmp_path_factory.mktemp("browser") / "home"
    deps = bootstrap.build(bootstrap.Settings(home, store_database(home)))
    report = build_demo(deps, reset=True)
    port = _free_port()
    config = uvicorn.Config(mount_web(create_app(deps), deps), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="uvicorn-browser-tests", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "tokens": report["tokens"], "agreement": report["agreement"],
               "deps": deps}
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        deps.store.dispose()


@pytest.fixture(scope="session")
def browser(sync_playwright_api: Any) -> Iterator[Any]:
    with sync_playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    tab.csp_errors = errors  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def shoot() -> Any:
    """Save a full-page screenshot under test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
    return take
