"""The web pages in a real browser: Debian's headless Chromium, driven by Playwright.

Playwright never downloads a browser here: it launches `/usr/bin/chromium`
(install it with `scripts/chromium.sh`). The app is served by uvicorn on a
free local port over a throwaway registry. The page screenshot lands in
`test-artifacts/browser/` for people (and CI artifacts) to look at.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import registry
from registry.server import create_app
from tests.conftest import PROJECT, make_repo

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: run `scripts/chromium.sh` (as root) to install Debian's "
           "Chromium for the browser tests")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The registry app over gravity, drag and drag-net (registered), at a local URL."""
    import uvicorn

    repo = make_repo(tmp_path_factory.mktemp("browser") / "repo", ["gravity", "drag", "drag-net"])
    reg = registry.open(repo)
    for name in ("gravity", "drag", "drag-net"):
        reg.register(repo / "modules" / name)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound here, so no other process can take the port
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(repo), log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)  # a readiness poll: `started` flips once the socket is served
    assert uv.started, "uvicorn did not start serving within 10 s"
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1200, "height": 900})
        try:
            yield context.new_page()
        finally:
            context.close()


def test_search_then_open_gravity_shows_equation_and_cost(server: str, page: Page) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server}/")
    expect(page.get_by_role("link", name="drag-net", exact=True)).to_be_visible()

    page.get_by_label("Search").fill("gravity")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/?q=gravity*")
    expect(page.get_by_role("link", name="drag-net", exact=True)).to_have_count(0)

    page.get_by_role("link", name="gravity", exact=True).click()
    page.wait_for_url("**/modules/gravity")
    expect(page.get_by_role("heading", level=1)).to_contain_text("gravity")

    math = page.locator("math").first
    expect(math).to_be_visible()
    box = math.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0
    # Laid out as MathML, a fraction stands taller than the letters inside it.
    fraction, letter = page.locator("math mfrac").first.bounding_box(), \
        page.locator("math mi").first.bounding_box()
    assert fraction is not None and letter is not None
    assert fraction["height"] > 1.5 * letter["height"]

    expect(page.locator("#cost-flops td.num")).to_have_text("4")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "gravity.png"
    shot.unlink(missing_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
