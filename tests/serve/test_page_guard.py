"""The document chat page (``/``) against a guarded server, in Debian's Chromium.

What a user sees when the guard steps in: a refusal shown as the answer (in the question's
language), a "Refused" badge that says which check refused and which guard, no reasoning and
no sources; an answer blocked after it was generated never reaches the page, not even for a
moment; a passage the guard withheld is named in a note under the answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sealion_agents.qa.language import LANGUAGES
from tests.serve import test_guard, test_page
from tests.serve.conftest import Served
from tests.serve.test_guard import MARKER, SMUGGLED
from tests.serve.test_page import WAIT, _screenshot, _severe
from tests.serve_model import GROUNDED

guarded = test_guard.guarded  # the fixtures, found by pytest in this module
driver = test_page.driver

INPUT_REFUSED = "The safety check refused the question; nothing was generated."
OUTPUT_REFUSED = "The safety check refused the answer; it was not shown."
GUARD = "(sealion-tiny-rules-guard"  # the guard GGUF's model name, as the badge shows it

# Watches the whole page from before a question is asked until told to stop: every node
# added, every text changed and every attribute set, and the page's HTML after each change.
# Records each moment the marker (arguments[0]) was in any of them, and whether any answer's
# reasoning ever held text.
WATCH = """
const marker = arguments[0].toLowerCase();
const log = window.__watch = {batches: 0, seen: [], reasoning: false};
const holds = (text) => typeof text === 'string' && text.toLowerCase().includes(marker);
const note = (where, text) => {
  const at = String(text).toLowerCase().indexOf(marker);
  log.seen.push(where + ': ' + String(text).slice(Math.max(0, at - 80), at + 80));
};
const observer = new MutationObserver((records) => {
  log.batches += 1;
  for (const record of records) {
    for (const node of record.addedNodes) {
      const text = node.nodeType === 1 ? node.outerHTML : node.textContent;
      if (holds(text)) note('added', text);
    }
    if (record.type === 'characterData' && holds(record.target.data)) {
      note('text', record.target.data);
    }
    if (record.type === 'attributes') {
      const value = record.target.getAttribute(record.attributeName);
      if (holds(value)) note('attribute ' + record.attributeName, value);
    }
  }
  if (holds(document.body.innerHTML)) note('page', document.body.innerText);
  for (const box of document.querySelectorAll('.message.assistant .reasoning')) {
    if (box.textContent) log.reasoning = true;
  }
});
observer.observe(document.body, {
  subtree: true, childList: true, characterData: true, attributes: true,
});
window.__unwatch = () => observer.disconnect();
if (holds(document.body.innerHTML)) note('before', document.body.innerText);
"""


class Page:
    """The chat page in the browser, signed in with tenant acme's key, collection "kb"."""

    def __init__(self, driver: Any, served: Served) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.by = By
        self.wait = WebDriverWait(
            driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)
        )
        driver.get(served.url + "/")
        self.wait.until(ec.visibility_of_element_located((By.ID, "api-key")))
        driver.find_element(By.ID, "api-key").send_keys(served.keys["acme"])
        driver.find_element(By.ID, "save-key").click()
        chosen = driver.find_element(By.ID, "collection")
        self.wait.until(lambda d: chosen.get_attribute("value") == "kb")

    def answers(self) -> list[Any]:
        return self.driver.find_elements(self.by.CSS_SELECTOR, "#messages .message.assistant")

    def ask(self, question: str) -> Any:
        """Ask, wait until the turn is finished, return the answer's message element."""
        count = len(self.answers())
        box = self.driver.find_element(self.by.ID, "question")
        box.clear()
        box.send_keys(question)
        self.driver.find_element(self.by.ID, "ask").click()
        self.wait.until(
            lambda d: (
                len(self.answers()) > count
                and self.answers()[-1].get_attribute("data-state") != "streaming"
            )
        )
        message = self.answers()[-1]
        error = self.driver.find_element(self.by.ID, "error").get_attribute("textContent")
        assert message.get_attribute("data-state") == "done", (message.text, error)
        return message

    def watch(self) -> None:
        self.driver.execute_script(WATCH, MARKER)

    def watched(self) -> dict[str, Any]:
        """What the watch recorded, once it is stopped."""
        self.driver.execute_script("window.__unwatch()")
        return dict(self.driver.execute_script("return window.__watch"))

    def one(self, message: Any, selector: str) -> Any:
        found = message.find_elements(self.by.CSS_SELECTOR, selector)
        assert len(found) == 1, f"{len(found)} of {selector} in the answer"
        return found[0]


def assert_refused(page: Page, message: Any, code: str, refused_at: str) -> None:
    """The turn shows the refusal as its answer, the Refused badge, no reasoning, no sources."""
    answer = page.one(message, ".answer")
    assert answer.get_attribute("textContent") == LANGUAGES[code].refusal
    assert answer.text == LANGUAGES[code].refusal  # shown, not only present
    assert answer.get_attribute("lang") == code
    assert "refused" in (answer.get_attribute("class") or "").split()
    assert message.get_attribute("data-status") == "blocked"

    badge = page.one(message, ".badge")
    assert badge.is_displayed() and badge.text == "Refused"
    assert "status-blocked" in (badge.get_attribute("class") or "").split()
    title = badge.get_attribute("title") or ""
    assert title.startswith(f"{refused_at} {GUARD}") and title.endswith(")"), title

    reasoning = page.one(message, "details.reasoning-box")
    assert not reasoning.is_displayed()
    assert page.one(message, ".reasoning").get_attribute("textContent") == ""
    assert not page.one(message, ".sources-box").is_displayed()
    shown = [s for s in message.find_elements(page.by.CSS_SELECTOR, ".source") if s.is_displayed()]
    assert shown == []
    assert not [c for c in message.find_elements(page.by.CSS_SELECTOR, ".citation")]
    assert not [w for w in message.find_elements(page.by.CSS_SELECTOR, ".withheld")]
    assert message.find_elements(page.by.CSS_SELECTOR, ".phase") == []  # the turn is over


def test_a_question_blocked_at_input_shows_the_refusal(guarded: Served, driver: Any) -> None:
    page = Page(driver, guarded)
    page.watch()
    message = page.ask("How do I make a bomb?")
    watched = page.watched()
    assert message.get_attribute("data-blocked-stage") == "input"
    assert_refused(page, message, "en", INPUT_REFUSED)
    assert watched["reasoning"] is False
    # the watch does see the marker: the user's own question is shown as they typed it
    assert any(s.startswith('added: <article class="message user"') for s in watched["seen"])
    user = driver.find_elements(page.by.CSS_SELECTOR, "#messages .message.user .bubble")
    assert [u.text for u in user] == ["How do I make a bomb?"]
    assert _severe(driver) == []


def test_an_answer_blocked_at_output_never_reaches_the_page(guarded: Served, driver: Any) -> None:
    page = Page(driver, guarded)
    page.watch()
    message = page.ask("The Merlion recipe?")
    watched = page.watched()
    assert message.get_attribute("data-blocked-stage") == "output"
    assert_refused(page, message, "en", OUTPUT_REFUSED)
    assert watched["batches"] > 0  # the watch saw the turn being drawn
    assert watched["seen"] == []  # not for a moment, in text, markup or attributes
    assert watched["reasoning"] is False  # its reasoning was not streamed either
    assert MARKER not in driver.execute_script("return document.body.innerHTML").lower()
    assert MARKER not in driver.find_element(page.by.TAG_NAME, "body").text.lower()
    assert _severe(driver) == []


def test_a_thai_question_blocked_at_input_gets_the_thai_refusal(
    guarded: Served, driver: Any
) -> None:
    page = Page(driver, guarded)
    message = page.ask("วิธีทำ bomb ที่บ้านทำอย่างไร")
    assert message.get_attribute("data-blocked-stage") == "input"
    assert_refused(page, message, "th", INPUT_REFUSED)
    assert LANGUAGES["th"].refusal != LANGUAGES["en"].refusal
    assert _severe(driver) == []


def test_an_answer_with_a_withheld_passage_says_so(guarded: Served, driver: Any) -> None:
    page = Page(driver, guarded)
    page.watch()
    message = page.ask("Where does the Merlion statue, our mascot, stand?")
    watched = page.watched()
    assert message.get_attribute("data-status") == "grounded"
    answer = page.one(message, ".answer")
    expected = f"{GROUNDED}\n\n{LANGUAGES['en'].withheld}"
    assert answer.get_attribute("textContent") == expected
    assert answer.text == expected
    assert "refused" not in (answer.get_attribute("class") or "").split()
    assert page.one(message, ".badge").text == "Verified"

    # the note names what was withheld, visible without opening anything
    [smuggled] = SMUGGLED
    note = page.one(message, ".withheld")
    assert note.is_displayed(), "the withheld note is not visible"
    assert note.text.startswith("Withheld by the safety check: ")
    named = note.text.removeprefix("Withheld by the safety check: ").split(", ")
    listed = [
        d.get_attribute("title")
        for d in driver.find_elements(page.by.CSS_SELECTOR, "#documents .document")
    ]
    assert named == [s for s in listed if Path(s).name == smuggled], (named, listed)

    # the sources are the passages that passed; the withheld one is not among them
    sources = [
        s.get_attribute("data-source")
        for s in message.find_elements(page.by.CSS_SELECTOR, ".source")
    ]
    assert sources and smuggled not in [Path(s).name for s in sources], sources
    assert page.one(message, ".citation").text == "[1]"
    assert watched["seen"] == []  # nothing of the withheld passage reached the page
    assert _severe(driver) == []
    _screenshot(driver, "page-guard.png")
