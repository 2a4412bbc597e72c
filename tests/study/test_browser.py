"""The study page in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium
through /usr/bin/chromedriver: nothing is downloaded). A participant answers half the study,
closes the browser, comes back with the same code and finishes."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium "
                "chromium-driver; .ci/run does it)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
uvicorn = pytest.importorskip("uvicorn")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from noisyarl.study.app import create_app  # noqa: E402
from noisyarl.study.store import DATABASE_FILE, AnswerStore  # noqa: E402


@pytest.fixture
def study_url(toy_study):
    """The toy study served by a real uvicorn server on a free loopback port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(toy_study), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the study server did not start"
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=10)
    listener.close()


def open_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=800,900"):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    return webdriver.Chrome(options=options, service=service)


def log_in(browser, url, code):
    browser.get(url)
    browser.find_element(By.ID, "code").send_keys(code)
    browser.find_element(By.ID, "start").click()


def answer_shown_images(browser, count, first):
    """Answer ``count`` images from number ``first`` on (alternating Yes / Cannot judge);
    returns the ids shown."""
    wait = WebDriverWait(browser, 10)
    shown = []
    for turn in range(count):
        wait.until(ready.visibility_of_element_located((By.ID, "question-view")))
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#answers button").is_enabled())
        image = browser.find_element(By.ID, "image")
        assert browser.execute_script("return arguments[0].naturalWidth", image) == 16
        shown.append(image.get_attribute("data-image-id"))
        assert browser.find_element(By.ID, "progress-text").text == f"Image {first + turn} of 6"
        value = "1" if turn % 2 == 0 else "cannot_judge"
        browser.find_element(By.CSS_SELECTOR, f'#answers button[data-value="{value}"]').click()
        wait.until(lambda b, old=shown[-1]: b.find_element(By.ID, "done-view").is_displayed()
                   or b.find_element(By.ID, "image").get_attribute("data-image-id") != old)
    return shown


def test_participant_answers_closes_the_page_and_resumes(toy_study, toy_codes, study_url):
    code = toy_codes[0]
    browser = open_browser()
    try:
        log_in(browser, study_url, "  " + code.lower())
        WebDriverWait(browser, 10).until(
            ready.text_to_be_present_in_element((By.ID, "progress-text"), "Image 1 of 6"))
        assert browser.find_element(By.ID, "question").text == "Is this person male?"
        labels = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#answers button")]
        assert labels == ["Yes", "No", "Cannot judge"]
        first_half = answer_shown_images(browser, 3, first=1)
    finally:
        browser.quit()  # the participant closes the page midway

    browser = open_browser()
    try:
        log_in(browser, study_url, "WRONG-CODE")
        WebDriverWait(browser, 10).until(ready.visibility_of_element_located((By.ID, "error")))
        assert "unknown participant code" in browser.find_element(By.ID, "error").text
        browser.find_element(By.ID, "code").clear()
        log_in(browser, study_url, code)
        WebDriverWait(browser, 10).until(
            ready.text_to_be_present_in_element((By.ID, "progress-text"), "Image 4 of 6"))
        second_half = answer_shown_images(browser, 3, first=4)
        WebDriverWait(browser, 10).until(ready.visibility_of_element_located((By.ID, "done")))
    finally:
        browser.quit()

    shown = first_half + second_half
    assert len(set(shown)) == 6
    stored = [row for row in AnswerStore(toy_study / DATABASE_FILE, shown).all_answers()
              if row.code == code]
    assert [row.image_id for row in stored] == shown  # stored in the order answered
    assert [row.choice for row in stored] == ["1", "cannot_judge", "1"] * 2
