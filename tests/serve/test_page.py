"""The document chat page (``/``) in a real browser: Debian's Chromium driven by Selenium,
against the real server on the scripted tiny model.

One walk through the page: key, new collection, upload with progress, a grounded answer
(reasoning streamed before the answer, a clickable citation that opens its passage), an
Indonesian decline, a revised answer with its removed claim, a passage holding HTML shown as
text, a wrong key shown as a readable error, and a console without errors.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import Served
from tests.serve_model import DOCS

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts"
WAIT = 60  # seconds: a slow 2-core box, maybe shared with another test run

GROUNDED = "It stands proudly at Marina Bay [1]."
REMOVED = "Its skin is silver[2]!"
DECLINE_ID = "Dokumen-dokumen ini tidak memuat jawaban atas pertanyaan ini."
EVIL = '<img src=x onerror="window.__pwned=1">Durian <b>bold</b> text'
# the 401 of the deliberate wrong-key step, as Chromium logs it (the only SEVERE line allowed)
EXPECTED_401 = re.compile(
    r"^http://127\.0\.0\.1:\d+/v1/\S+ - Failed to load resource: the server responded with a "
    r"status of 401 \(Unauthorized\)$"
)

# Records, in the order the DOM changed, when the last answer's .reasoning and .answer first
# held text, and whether the reasoning was open then.
OBSERVE = """
const log = window.__firsts = {order: [], openWhileReasoning: null, closedAtAnswer: null};
const messages = document.getElementById('messages');
const seen = new WeakSet();
const observer = new MutationObserver((records) => {
  for (const record of records) {
    const node = record.target.nodeType === 1 ? record.target : record.target.parentElement;
    if (!node) continue;
    for (const kind of ['reasoning', 'answer']) {
      const el = node.closest('.' + kind);
      if (!el || seen.has(el) || !el.textContent) continue;
      seen.add(el);
      const details = el.closest('.message').querySelector('details.reasoning-box');
      log.order.push(kind);
      if (kind === 'reasoning') log.openWhileReasoning = details.open;
      if (kind === 'answer') log.closedAtAnswer = !details.open;
    }
  }
});
observer.observe(messages, {subtree: true, childList: true, characterData: true});
"""

COLLECTIONS = "return Array.from(document.querySelectorAll('#collection option'), (o) => o.value)"

# Records the JSON body of every ask request, to check the history the page sends.
RECORD_ASKS = """
window.__asks = [];
const original = window.fetch;
window.fetch = function (url, options) {
  if (String(url).endsWith('/ask') && options && options.body) {
    window.__asks.push(JSON.parse(options.body));
  }
  return original.apply(this, arguments);
};
"""


def _browser_paths() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: the page test needs Debian's Chromium and its "
            "driver. Run `make env` as root (or "
            "`apt-get install chromium chromium-driver fonts-noto-core`).",
            pytrace=False,
        )


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    _browser_paths()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        browser.set_script_timeout(WAIT)
        yield browser
    finally:
        browser.quit()


def _severe(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*.png\n")
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    extra = os.environ.get("SEALION_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)


def test_page_walkthrough(served: Served, driver: Any, tmp_path: Path) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    # the page rebuilds lists (collections, documents, answers) as they change
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))
    find = driver.find_element

    def answers() -> list[Any]:
        return driver.find_elements(By.CSS_SELECTOR, "#messages .message.assistant")

    def last(selector: str) -> Any:
        """``selector`` inside the last answer."""
        found = answers()[-1].find_elements(By.CSS_SELECTOR, selector)
        assert found, f"no {selector} in the last answer"
        return found[-1]

    def stored_key() -> Any:
        return driver.execute_script("return localStorage.getItem('sealion.apiKey')")

    def attribute(element_id: str, name: str) -> Any:
        return driver.find_element(By.ID, element_id).get_attribute(name)

    def ask(question: str, *, enter: bool = False) -> Any:
        """Ask, wait until the answer is finished, return the answer's message element."""
        count = len(answers())
        box = find(By.ID, "question")
        box.clear()
        box.send_keys(question)
        if enter:
            box.send_keys(Keys.ENTER)
        else:
            find(By.ID, "ask").click()
        wait.until(
            lambda d: (
                len(answers()) > count and answers()[-1].get_attribute("data-state") != "streaming"
            )
        )
        message = answers()[-1]
        assert message.get_attribute("data-state") == "done", (
            message.text,
            find(By.ID, "error").get_attribute("textContent"),
        )
        return message

    def upload(path: Path) -> None:
        find(By.ID, "files").send_keys(str(path))
        wait.until(lambda d: d.find_element(By.ID, "upload").is_enabled())
        find(By.ID, "upload").click()
        wait.until(lambda d: attribute("upload-status", "data-stage") in {"done", "failed"})
        status = find(By.ID, "upload-status")
        assert status.get_attribute("data-stage") == "done", status.text
        assert path.name in status.text and "added" in status.text, status.text
        assert not find(By.ID, "upload-progress").get_attribute("hidden")
        assert find(By.ID, "upload-percent").text == "100%"

    driver.get(served.url + "/")
    wait.until(ec.visibility_of_element_located((By.ID, "api-key")))
    assert driver.title

    # the key, once
    find(By.ID, "api-key").send_keys(served.keys["acme"])
    find(By.ID, "save-key").click()
    wait.until(lambda d: "kb" in d.execute_script(COLLECTIONS))
    assert stored_key() == served.keys["acme"]
    wait.until(ec.invisibility_of_element_located((By.ID, "api-key")))  # folded once accepted
    wait.until(lambda d: attribute("server-status", "data-state") == "ready")

    # a new collection, selected once created
    find(By.ID, "new-collection").send_keys("page-test")
    find(By.ID, "create-collection").click()
    wait.until(lambda d: attribute("collection", "value") == "page-test")
    assert "page-test" in driver.execute_script(COLLECTIONS)

    # upload: the bytes, then the job, each file's result
    merlion = tmp_path / "merlion.md"
    merlion.write_text(DOCS["merlion.md"], encoding="utf-8")
    upload(merlion)
    wait.until(lambda d: "merlion.md" in d.find_element(By.ID, "documents").text)

    # a grounded answer: reasoning streams first (open), then the answer (reasoning collapsed)
    driver.execute_script(OBSERVE)
    driver.execute_script(RECORD_ASKS)
    message = ask("Where does the Merlion mascot stand?", enter=True)
    firsts = driver.execute_script("return window.__firsts")
    assert firsts["order"] == ["reasoning", "answer"], firsts
    assert firsts["openWhileReasoning"] is True, firsts
    assert firsts["closedAtAnswer"] is True, firsts
    assert last(".reasoning").get_attribute("textContent") == "Passage one names the place."
    assert last("details.reasoning-box").get_attribute("open") is None  # collapsed once answered
    assert last(".answer").get_attribute("textContent") == GROUNDED
    assert message.get_attribute("data-status") == "grounded"

    # citation [1] opens its passage and file name
    citation = last(".answer .citation")
    assert citation.text == "[1]"
    citation.click()
    wait.until(ec.visibility_of_element_located((By.ID, "passage")))
    assert find(By.ID, "passage-text").text == DOCS["merlion.md"]
    assert "merlion.md" in find(By.ID, "passage").text

    # an Indonesian question the documents do not answer: the Indonesian decline, with the
    # first turn sent as history
    message = ask("Di mana letak kota Atlantis?")
    assert message.get_attribute("data-status") == "declined"
    assert last(".answer").get_attribute("textContent") == DECLINE_ID
    assert last(".answer").get_attribute("lang") == "id"
    asks = driver.execute_script("return window.__asks")
    assert asks[0]["history"] == [] and asks[0]["stream"] is True
    assert asks[1]["history"] == [
        {"role": "user", "content": "Where does the Merlion mascot stand?"},
        {"role": "assistant", "content": GROUNDED},
    ]

    # a fresh conversation (the scripted model rewrites follow-ups into its default reply):
    # the verifier removes the unsupported claim; the verified answer replaces what streamed
    find(By.ID, "new-chat").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#messages .message"))
    message = ask("Is the Merlion gold?")
    assert message.get_attribute("data-status") == "revised"
    assert last(".answer").get_attribute("textContent") == GROUNDED
    removed = last(".removed")
    assert "removed: not supported by the sources" in removed.text.lower()
    claim = last(".removed-claim")
    assert claim.text == REMOVED
    assert claim.tag_name == "del"
    assert "line-through" in claim.value_of_css_property("text-decoration-line")
    assert REMOVED not in last(".answer").get_attribute("textContent")
    assert driver.execute_script("return window.__asks[2].history") == []
    last(".answer .citation").click()
    wait.until(lambda d: d.find_element(By.ID, "passage-text").text == DOCS["merlion.md"])
    _screenshot(driver, "page.png")

    # a passage that holds HTML is shown as text: cited, opened, never parsed
    evil = tmp_path / "evil.txt"
    evil.write_text(EVIL, encoding="utf-8")
    upload(evil)
    find(By.ID, "new-chat").click()
    ask("What does the mascot say about Durian bold text?")
    sources = [
        b.get_attribute("data-source")
        for b in answers()[-1].find_elements(By.CSS_SELECTOR, ".source")
    ]
    assert "evil.txt" in sources, sources
    citation = last(".answer .citation")
    if "evil.txt" not in (citation.get_attribute("title") or ""):  # retrieval ranked it second
        citation = last('.source[data-source="evil.txt"]')
        driver.execute_script("arguments[0].closest('details').open = true", citation)
    citation.click()
    wait.until(lambda d: "evil.txt" in d.find_element(By.ID, "passage-source").text)
    assert find(By.ID, "passage-text").text == EVIL  # the literal tags, "<b>" included
    assert "<b>bold</b>" in find(By.ID, "passage-text").get_attribute("textContent")
    injected = "#messages img, #passage img, #messages b, #passage b"
    assert not driver.find_elements(By.CSS_SELECTOR, injected)
    assert driver.execute_script("return typeof window.__pwned") == "undefined"

    # no error in the console so far
    assert _severe(driver) == []

    # a wrong key: a readable message, and another key can be entered
    find(By.ID, "change-key").click()
    key = find(By.ID, "api-key")
    key.clear()
    key.send_keys("sk-not-a-real-key")
    find(By.ID, "save-key").click()
    wait.until(ec.visibility_of_element_located((By.ID, "error")))
    error = find(By.ID, "error").text
    assert "Wrong API key" in error and "Enter another key" in error, error
    assert find(By.ID, "error").get_attribute("data-status") == "401"
    assert "invalid" in key.get_attribute("class")
    assert stored_key() is None
    unexpected = [m for m in _severe(driver) if not EXPECTED_401.match(m)]
    assert unexpected == []

    key.clear()
    key.send_keys(served.keys["acme"])
    find(By.ID, "save-key").click()
    wait.until(ec.invisibility_of_element_located((By.ID, "error")))
    wait.until(lambda d: attribute("key-status", "data-state") == "ok")
    assert stored_key() == served.keys["acme"]

    # nothing but the deliberate 401 was ever logged as an error
    assert [m for m in _severe(driver) if not EXPECTED_401.match(m)] == []
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
