"""The web UI in a real browser: Playwright drives Debian's chromium (headless, never a
downloaded browser) against `ragapp serve` on loopback with the real bundled models.

Screenshots of each state go to test-artifacts/browser/ (git-ignored)."""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ragapp.server import create_app
from ragapp.server.testing import running_server
from ragapp.store import forget_memory_spaces
from tests.conftest import ROOT
from tests.server_helpers import (
    LIGHTHOUSE,
    OUT_OF_SCOPE,
    PDF_QUESTION,
    harbour_pdf,
    server_settings,
    upload,
    wait_for_job,
)

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "test-artifacts" / "browser"
LONG = 180_000  # ms: answers on a busy 2-core machine

if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)
os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"


@pytest.fixture(scope="module")
def server_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return create_app(server_settings(tmp_path_factory.mktemp("browser") / "data"))


@pytest.fixture(scope="module")
def base_url(server_app: Any) -> Iterator[str]:
    with running_server(server_app) as url:
        yield url


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("upload-me")
    (folder / "lighthouse.txt").write_text(LIGHTHOUSE)
    (folder / "harbour.pdf").write_bytes(harbour_pdf())
    return {p.name: p for p in folder.iterdir()}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


class Page:
    """One browser tab on the UI, recording page errors and any request off loopback."""

    def __init__(
        self, browser: Any, base_url: str, scheme: str = "light", wait: bool = True
    ) -> None:
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 820}, color_scheme=scheme, device_scale_factor=1
        )
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._only_loopback)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.goto(base_url + "/")
        if wait:
            self.page.wait_for_function(
                "() => document.querySelector('#status-model').textContent !== 'Loading…'"
            )

    def _only_loopback(self, route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def ask(self, question: str) -> Any:
        """Type a question, press Enter, wait for the answer to finish; returns its card."""
        before = self.page.locator(".msg.assistant").count()
        self.page.fill("#question", question)
        self.page.press("#question", "Enter")
        card = self.page.locator(".msg.assistant .card").nth(before)
        card.locator(".meta-line").wait_for(timeout=LONG)
        return card


@pytest.fixture(scope="module")
def ui(browser: Any, base_url: str) -> Iterator[Page]:
    page = Page(browser, base_url)
    yield page
    assert page.errors == [], page.errors
    assert page.foreign == [], f"the UI asked for something off this machine: {page.foreign}"
    page.context.close()


def test_controls_are_labelled_and_keyboard_reachable(ui: Page) -> None:
    unlabelled = ui.page.evaluate(
        """() => [...document.querySelectorAll('button, input, select, textarea, a[href]')]
            .filter(e => e.offsetParent !== null || e.id === 'file-input')
            .filter(e => !(e.getAttribute('aria-label') || e.textContent.trim()
                           || (e.id && document.querySelector(`label[for="${e.id}"]`))
                           || e.getAttribute('aria-hidden') === 'true'))
            .map(e => e.outerHTML.slice(0, 80))"""
    )
    assert unlabelled == []
    ui.page.locator("body").click(position={"x": 600, "y": 400})
    ui.page.keyboard.press("/")
    assert ui.page.evaluate("document.activeElement.id") == "question"
    assert ui.page.locator("#stop").is_hidden()


def test_upload_with_picker_and_drop(ui: Page, files: dict[str, Path]) -> None:
    ui.shot("0-empty")
    ui.page.set_input_files("#file-input", str(files["lighthouse.txt"]))
    pdf = base64.b64encode(files["harbour.pdf"].read_bytes()).decode()
    ui.page.evaluate(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], name, {type: 'application/pdf'}));
            const zone = document.querySelector('#dropzone');
            for (const type of ['dragenter', 'dragover', 'drop'])
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        ["harbour.pdf", pdf],
    )
    ui.page.wait_for_function(
        "() => document.querySelectorAll('.upload.done').length === 2", timeout=LONG
    )
    docs = ui.page.locator("#doc-list .doc")
    docs.nth(1).wait_for()
    names = sorted(docs.locator(".doc-name").all_text_contents())
    assert names == ["harbour.pdf", "lighthouse.txt"]
    for meta in docs.locator(".doc-meta").all_text_contents():
        assert "chunk" in meta and "uploaded" in meta
    states = ui.page.locator(".upload .upload-state").all_text_contents()
    assert all("added" in s for s in states), states
    assert "2 files" in ui.page.locator("#doc-count").text_content()
    ui.shot("1-uploaded")


def test_answer_streams_with_a_working_citation(ui: Page, base_url: str) -> None:
    ui.page.evaluate(
        """() => {
            window.__lengths = [];
            new MutationObserver(() => {
                const answers = document.querySelectorAll('.msg.assistant .answer');
                const last = answers[answers.length - 1];
                if (last && last.classList.contains('streaming')) window.__lengths.push(last.textContent.length);
            }).observe(document.querySelector('#messages'), {subtree: true, childList: true, characterData: true});
        }"""
    )
    card = ui.ask(PDF_QUESTION)
    lengths = ui.page.evaluate("window.__lengths")
    assert len(set(lengths)) >= 3, f"the answer did not arrive in pieces: {lengths}"
    assert card.locator(".answer").text_content().strip()
    assert card.locator(".notice").count() == 0
    chip = card.locator(".source-chip").first
    assert chip.locator(".label").text_content() == "harbour.pdf"
    assert chip.locator(".page").text_content() == "p. 2"
    assert "first token" in card.locator(".meta-line").text_content()
    ui.shot("2-answer")

    chip.click()
    dialog = ui.page.locator("#source-dialog")
    dialog.wait_for(state="visible")
    assert ui.page.locator("#source-title").text_content() == "harbour.pdf"
    assert ui.page.locator("#source-meta").text_content().startswith("Page 2")
    assert "48,300" in ui.page.locator("#source-text").text_content()
    link = ui.page.locator("#source-open")
    href = link.get_attribute("href")
    assert href.endswith("#page=2") and link.text_content() == "Open PDF at page 2"
    ui.shot("3-source")
    res = ui.page.request.get(base_url + href.split("#")[0])
    assert res.status == 200 and res.headers["content-type"] == "application/pdf"
    view = ui.page.locator("#source-view").get_attribute("href")
    anchor = view.split("#")[1]
    assert f'id="{anchor}"' in ui.page.request.get(base_url + view.split("#")[0]).text()
    ui.page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def test_queued_then_not_found(ui: Page, server_app: Any) -> None:
    with server_app.state.server.queue.turn():  # another question holds the LLM
        ui.page.fill("#question", OUT_OF_SCOPE)
        ui.page.press("#question", "Enter")
        waiting = ui.page.locator(".progress-line", has_text="Queued")
        waiting.wait_for(timeout=LONG)
        assert waiting.text_content() == "Queued — waiting for the question ahead of yours"
        assert ui.page.locator("#stop").is_visible()
        ui.shot("4-queued")
    card = ui.page.locator(".msg.assistant .card").last
    card.locator(".meta-line").wait_for(timeout=LONG)
    notice = card.locator(".notice")
    assert notice.locator("strong").text_content() == "Not found in your documents"
    assert card.locator(".source-chip").count() == 0
    ui.shot("5-not-found")


def test_a_busy_server_is_counted_down_and_retried(ui: Page, server_app: Any) -> None:
    """The line is full (max_queue 1: one question runs, one waits): the server answers
    503 with Retry-After, the page says so, counts down, and retries until it gets in."""
    queue = server_app.state.server.queue
    queue.max_waiting, queue.turn_s = 1, 1.0  # Retry-After: ceil(1 s x 2 ahead) = 2 s
    release = threading.Event()

    def hold() -> None:
        with queue.turn():
            release.wait(60)

    holders = [threading.Thread(target=hold, daemon=True) for _ in range(2)]
    try:
        for i, holder in enumerate(holders, 1):
            holder.start()
            while queue.pending < i:
                time.sleep(0.01)
        ui.page.fill("#question", OUT_OF_SCOPE)
        ui.page.press("#question", "Enter")
        busy = ui.page.locator(".progress-line", has_text="busy")
        busy.wait_for(timeout=LONG)
        assert re.fullmatch(r"The server is busy — retrying in \d+ s", busy.text_content())
        ui.shot("4b-busy")
    finally:
        release.set()
        for holder in holders:
            holder.join(10)
        queue.max_waiting = server_app.state.server.settings.max_queue
    card = ui.page.locator(".msg.assistant .card").last
    card.locator(".meta-line").wait_for(timeout=LONG)
    assert card.locator(".notice strong").text_content() == "Not found in your documents"
    assert card.locator(".error-box").count() == 0


def test_document_text_is_shown_as_text(ui: Page, browser: Any, base_url: str) -> None:
    link = ui.page.locator("#doc-list .doc-name", has_text="lighthouse.txt")
    viewer = browser.new_page()
    viewer.on("dialog", lambda d: d.dismiss())
    viewer.goto(base_url + link.get_attribute("href"))
    text = viewer.locator(".chunk-text").first.text_content()
    assert '<script>window.__xss = 1; alert("pwned")</script>' in text
    assert viewer.evaluate("window.__xss") is None
    viewer.close()


def test_delete_a_file(ui: Page) -> None:
    item = ui.page.locator("#doc-list .doc", has_text="lighthouse.txt")
    button = item.get_by_role("button", name="Delete lighthouse.txt")
    button.click()
    confirm = item.get_by_role("button", name="Confirm: delete lighthouse.txt")
    assert confirm.text_content() == "Delete?"
    confirm.click()
    item.wait_for(state="detached")
    assert ui.page.locator("#doc-list .doc-name").all_text_contents() == ["harbour.pdf"]
    assert "1 file" in ui.page.locator("#doc-count").text_content()
    ui.shot("6-deleted")


def test_dark_mode(browser: Any, base_url: str) -> None:
    dark = Page(browser, base_url, scheme="dark")
    light_bg = "rgb(246, 247, 249)"
    assert dark.page.evaluate("getComputedStyle(document.body).backgroundColor") != light_bg
    dark.shot("7-dark")
    assert dark.errors == [] and dark.foreign == []
    dark.context.close()


def test_login_with_a_token(browser: Any, tmp_path: Path) -> None:
    app = create_app(server_settings(tmp_path / "data"), token="browser-t0ken")
    with running_server(app) as url:
        tab = Page(browser, url, wait=False)
        page = tab.page
        assert page.url.endswith("/login")
        page.fill("#token", "not-it")
        page.click("button[type=submit]")
        assert page.locator("#login-error").text_content() == "That token is not right."
        page.fill("#token", "browser-t0ken")
        page.click("button[type=submit]")
        page.wait_for_url(url + "/")
        page.locator("#docs-empty").wait_for()  # the API answered with the session cookie
        page.wait_for_function(  # /api/status too (the models may still be loading)
            "() => document.querySelector('#status-model').textContent !== 'Loading…'"
        )
        pill = page.locator("#status-model")
        assert "llama.cpp" in pill.text_content() and "demo model" in pill.text_content()
        assert "answers are unreliable" in (pill.get_attribute("title") or "")
        tab.shot("8-after-login")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(url + "/login")
        assert tab.errors == [] and tab.foreign == []
        tab.context.close()


# --- the page around the answers: Markdown, the kept conversation, scrolling, the file list ---
# A server over the fake stack (hash embedder, echo LLM with scripted answers): what these
# check is the page, so the answers are written here rather than left to a model.

SCRIPTED_STACK = {
    "chroma_url": "memory://browser",
    "embedding_model": "fake",
    "llm_backend": "fake",
}
MARKDOWN_QUESTION = "Who is the keeper of the Kestrel Point lighthouse? Answer in Markdown."
MARKDOWN_ANSWER = (
    "The keeper is **Ingrid Solberg** [1].\n\n"
    "- she has kept the light since *2019* [1]\n"
    "- she lives in the cottage beside the tower\n\n"
    "```python\nprint('<b>not bold</b>')\n```\n\n"
    "The notes say <script>window.__answer_xss = 1</script> and "
    '<img src=x onerror="window.__img_xss = 1">.\n\n'
    "[a script link](javascript:window.__link_xss=1) · [a web link](https://example.org/docs) · "
    "![a picture](https://example.org/pixel.png)"
)
FERRY_FOLDER = ["ferry.txt", "timetable.docx"]
LONG_QUESTIONS = [f"When was the Kestrel Point lighthouse lamp lit ({n})?" for n in range(3)]
LONG_ANSWER = "\n\n".join(
    f"{n}. The lamp of the Kestrel Point lighthouse was first lit on 14 March 1887 [1]."
    for n in range(1, 13)
)


@dataclass
class Scripted:
    url: str
    app: Any
    client: httpx.Client

    @property
    def collection(self) -> Any:
        return self.app.state.server.app().collection


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scripted]:
    data = tmp_path_factory.mktemp("scripted") / "data"
    settings = server_settings(
        data, max_tokens=512, parse_timeout_s=0, parse_memory_mb=0, **SCRIPTED_STACK
    )
    app = create_app(settings)
    llm = app.state.server.models.llm().llm
    llm.answers = {MARKDOWN_QUESTION: MARKDOWN_ANSWER} | dict.fromkeys(LONG_QUESTIONS, LONG_ANSWER)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        res = upload(client, [("lighthouse.txt", LIGHTHOUSE.encode())])
        assert wait_for_job(client, res.json()["job_id"])["state"] == "done"
        yield Scripted(url, app, client)
    forget_memory_spaces(SCRIPTED_STACK["chroma_url"])


@pytest.fixture(scope="module")
def sui(browser: Any, scripted: Scripted) -> Iterator[Page]:
    page = Page(browser, scripted.url)
    yield page
    assert page.errors == [], page.errors
    assert page.foreign == [], f"the UI asked for something off this machine: {page.foreign}"
    page.context.close()


def test_an_answer_is_markdown_with_raw_html_as_text(sui: Page) -> None:
    card = sui.ask(MARKDOWN_QUESTION)
    answer = card.locator(".answer")
    assert answer.locator("strong").first.text_content() == "Ingrid Solberg"
    assert answer.locator("ul > li").count() == 2
    assert answer.locator("li .cite").first.text_content() == "1"  # citations inside Markdown
    code = answer.locator("pre > code.language-python")
    assert code.text_content() == "print('<b>not bold</b>')\n"
    assert answer.locator("b, script, img").count() == 0
    text = answer.text_content()
    assert "<script>window.__answer_xss = 1</script>" in text
    assert '<img src=x onerror="window.__img_xss = 1">' in text
    assert sui.page.evaluate("[window.__answer_xss, window.__img_xss]") == [None, None]
    hrefs = answer.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.org/docs", "https://example.org/pixel.png"]  # never loaded
    assert "[a script link](javascript:window.__link_xss=1)" in text
    chip = card.locator(".source-chip").first
    assert chip.locator(".label").text_content() == "lighthouse.txt"
    answer.locator(".cite").first.click()
    sui.page.locator("#source-dialog").wait_for(state="visible")
    sui.page.keyboard.press("Escape")
    sui.shot("9-markdown")


def test_the_conversation_survives_a_reload_and_clear_empties_it(sui: Page) -> None:
    page = sui.page
    stored = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('ragapp.chat.'))")
    assert stored == ["ragapp.chat.default"]
    page.reload()
    card = page.locator(".msg.assistant .card").first
    card.locator(".meta-line").wait_for()
    assert page.locator(".msg.user .bubble").all_text_contents() == [MARKDOWN_QUESTION]
    assert card.locator(".answer pre > code").count() == 1
    assert card.locator(".source-chip .label").all_text_contents() == ["lighthouse.txt"]
    assert page.locator("#chat-empty").is_hidden()
    sui.shot("10-restored")
    # kept per collection: another one starts empty, and this one is still there after
    page.evaluate("localStorage.setItem('ragapp.collection', 'elsewhere')")
    page.reload()
    page.locator("#chat-empty").wait_for()
    assert page.locator(".msg").count() == 0
    page.evaluate("localStorage.setItem('ragapp.collection', 'default')")
    page.reload()
    page.locator(".msg.assistant .meta-line").wait_for()

    page.get_by_role("button", name="Clear conversation").click()
    assert page.locator(".msg").count() == 0 and page.locator("#chat-empty").is_visible()
    assert page.evaluate("localStorage.getItem('ragapp.chat.default')") is None
    page.reload()
    page.locator("#chat-empty").wait_for()
    assert page.locator(".msg").count() == 0


def _gap_below(page: Any) -> float:
    """How far the message list is from being scrolled to its end, in pixels."""
    return float(
        page.evaluate(
            "() => { const m = document.querySelector('#messages');"
            " return m.scrollHeight - m.scrollTop - m.clientHeight; }"
        )
    )


def test_the_newest_answer_and_its_sources_are_scrolled_into_view(sui: Page) -> None:
    page = sui.page
    messages = page.locator("#messages")
    for n, question in enumerate(LONG_QUESTIONS):
        if n == 2:  # the reader scrolled back up: asking again brings the new answer in
            page.evaluate("document.querySelector('#messages').scrollTop = 0")
        card = sui.ask(question)
        assert card.locator(".answer ol > li").count() == 12
        page.wait_for_function(
            "() => { const m = document.querySelector('#messages');"
            " return m.scrollHeight - m.scrollTop - m.clientHeight < 2; }"
        )
        chips, view = card.locator(".sources").bounding_box(), messages.bounding_box()
        assert chips is not None and view is not None
        assert (
            view["y"] <= chips["y"] and chips["y"] + chips["height"] <= view["y"] + view["height"]
        )
    tall = "(m => m.scrollHeight / m.clientHeight)(document.querySelector('#messages'))"
    assert page.evaluate(tall) > 2 and _gap_below(page) < 2  # it did have to scroll
    sui.shot("11-scrolled")


def test_the_file_list_shows_folders_and_filters_as_you_type(
    sui: Page, scripted: Scripted, tmp_path: Path
) -> None:
    from ingest.pipeline import ingest_paths

    for folder, name, text in [
        ("harbour-notes", "tides.md", "# Tides\n\nHigh tide at Kestrel Point is at noon.\n"),
        ("ferry-times", "ferry.txt", "The ferry to Kestrel Point leaves at 9:15.\n"),
        ("ferry-times", "timetable.docx", "not a zip: this one fails"),
    ]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text(text)
    ingest_paths([tmp_path], scripted.collection)  # as `ragapp ingest` would
    page = sui.page
    page.reload()
    page.locator("#doc-list .doc", has_text="tides.md").wait_for()
    heads = page.locator("#doc-list .folder-name").all_text_contents()
    assert heads == ["Uploads", "ferry-times", "harbour-notes"]  # the full path in the title
    titles = page.locator("#doc-list .folder-head").evaluate_all("h => h.map(e => e.title)")
    assert {str(tmp_path / "ferry-times"), str(tmp_path / "harbour-notes")} <= set(titles)
    head = page.locator(f'.folder-head[title="{tmp_path / "ferry-times"}"]')
    ferries = page.locator("#doc-list .folder", has=head)
    assert sorted(ferries.locator(".doc-name").all_text_contents()) == FERRY_FOLDER
    failed = ferries.locator(".doc.failed")
    assert "not a zip" in failed.locator(".doc-reason").text_content()
    assert failed.get_by_role("button", name="Forget timetable.docx").is_visible()

    box = page.get_by_label("Filter the files by name or folder")
    visible = lambda: page.locator("#doc-list .doc:visible .doc-name").all_text_contents()  # noqa: E731
    box.press_sequentially("ferry")  # the folder's name: both of its files
    assert sorted(visible()) == FERRY_FOLDER
    assert page.locator("#doc-list .folder:visible").count() == 1
    sui.shot("12-filtered")
    box.fill("TIDES")
    assert visible() == ["tides.md"]
    box.fill("no such file")
    assert visible() == []
    assert page.locator("#filter-empty").text_content() == "No file matches “no such file”."
    box.fill("")
    assert len(visible()) == 4 and page.locator("#filter-empty").is_hidden()


def test_a_failed_upload_is_listed_with_its_reason_and_deleted(
    sui: Page, scripted: Scripted, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a PDF")
    page = sui.page
    page.set_input_files("#file-input", str(broken))
    page.locator(".upload.failed", has_text="broken.pdf").wait_for(timeout=LONG)
    item = page.locator("#doc-list .doc.failed", has_text="broken.pdf")
    item.wait_for()
    reason = item.locator(".doc-reason").text_content()
    assert reason.startswith("Failed: cannot parse"), reason
    assert "1 file · 1 chunk" not in page.locator("#doc-count").text_content()
    assert "2 failed" in page.locator("#doc-count").text_content()  # with timetable.docx
    copy = scripted.collection.uploads_dir / "broken.pdf"
    assert copy.is_file()
    sui.shot("13-failed-upload")
    item.get_by_role("button", name="Delete broken.pdf").click()
    item.get_by_role("button", name="Confirm: delete broken.pdf").click()
    item.wait_for(state="detached")
    assert not copy.exists()
    failed = scripted.client.get("/api/documents").json()["failed"]
    assert [f["name"] for f in failed] == ["timetable.docx"]
    assert "1 failed" in page.locator("#doc-count").text_content()
