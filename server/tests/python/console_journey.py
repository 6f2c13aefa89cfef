"""Walks the web console in a real browser, as a person would, and checks every page.

Run by server/tests/console_browser.rs against the real `hb serve`, with the project's venv
(.tools/venv, made by scripts/tools.sh): Selenium drives Debian's headless Chromium through
chromedriver; the browser resolves no host name but the loopback's.

On every page it visits the script
- injects axe-core (.tools/axe-core/axe.min.js, pinned in scripts/tools.sh) and fails on any
  serious or critical violation, naming the rule and the elements;
- saves a screenshot, at 1280 and at 375 pixels wide, to the `screens` folder;
- reads Navigation Timing (time to DOMContentLoaded and to load, in ms) and prints it as
  `timing <page> <dom-content-loaded> <load>` for the bench notes.

The journey: sign in through the sign-in form; open the history, filter it by action with
the form's labelled fields, open one commit by its visible subject and find its intent diff
and rendered objects; add a CronJob on a project page and read its schedule in plain words
and the commit it made; then a second browser session as another organization's user finds
every one of those pages "Not found".

Usage: console_journey.py <config.json>; prints `N passed, N failed`.
"""

import json
import os
import shutil
import sys
import tempfile
import urllib.parse

# Selenium Manager would look for a browser and driver to download; both are given here.
os.environ["SE_OFFLINE"] = "true"
os.environ["SE_AVOID_STATS"] = "true"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import browser_signin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

failures = []
checks = 0
timings = []


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)
    return condition


def browser(profile):
    # The same locked-down Chromium as the sign-in test (loopback only, no background
    # networking), at a desktop size.
    driver = browser_signin.browser(profile)
    driver.set_window_size(1280, 900)
    return driver


class Pages:
    """Checks every page the browser lands on: accessibility, screenshots, timing."""

    def __init__(self, cfg):
        with open(cfg["axe"], encoding="utf-8") as f:
            self.axe = f.read()
        self.screens = cfg["screens"]
        os.makedirs(self.screens, exist_ok=True)

    def inspect(self, driver, name):
        WebDriverWait(driver, 20).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        # Selenium evaluates scripts through the DevTools protocol, outside the page's CSP.
        driver.execute_script(self.axe)
        result = driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ['violations']})
               .then(r => done(r.violations.map(v => ({
                   id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))
               .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));
            """
        )
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        check(not bad, f"{name}: axe-core found serious or critical violations: {bad}")
        timing = driver.execute_script(
            """
            const n = performance.getEntriesByType('navigation')[0];
            return n ? [n.domContentLoadedEventEnd, n.loadEventEnd, n.transferSize] : null;
            """
        )
        if timing:
            timings.append((name, timing[0], timing[1]))
            print(f"timing {name} {timing[0]:.1f} {timing[1]:.1f}")
        driver.save_screenshot(os.path.join(self.screens, f"{name}.png"))
        driver.set_window_size(375, 900)
        driver.save_screenshot(os.path.join(self.screens, f"{name}-375.png"))
        width = driver.execute_script("return document.documentElement.scrollWidth")
        check(width <= 400, f"{name}: readable at 375 px wide (the page is {width} px wide)")
        driver.set_window_size(1280, 900)


def sign_in(driver, cfg, email, password, return_to):
    """Signs in through the sign-in form, coming back to `return_to`."""
    base = cfg["base"]
    driver.get(f"{base}{cfg['login']}?" + urllib.parse.urlencode({"return_to": return_to}))
    wait = WebDriverWait(driver, 20)
    wait.until(expected_conditions.presence_of_element_located((By.NAME, "email")))
    driver.find_element(By.NAME, "email").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    before = driver.current_url
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(lambda d: d.current_url != before)


def field(driver, label):
    """The input a visible label names."""
    element = driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']")
    return driver.find_element(By.ID, element.get_attribute("for"))


def button(driver, text):
    return driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']")


def history(driver, cfg, pages):
    base, org = cfg["base"], cfg["org"]
    sign_in(driver, cfg, cfg["email"], cfg["password"], f"/orgs/{org}/history")
    check(
        urllib.parse.urlsplit(driver.current_url).path == f"/orgs/{org}/history",
        f"signed in, back on the history ({driver.current_url})",
    )
    pages.inspect(driver, "history")
    body = driver.find_element(By.TAG_NAME, "body").text
    for subject in cfg["subjects"]:
        check(subject in body, f"the history lists {subject!r}")

    # Filter by action, through the form's labelled fields.
    driver.find_element(By.XPATH, "//summary[normalize-space()='Filter']").click()
    field(driver, "Action").send_keys(cfg["action"])
    button(driver, "Show").click()
    WebDriverWait(driver, 20).until(lambda d: "action=" in d.current_url)
    body = driver.find_element(By.TAG_NAME, "body").text
    check(cfg["action_subject"] in body, f"the filtered history lists {cfg['action_subject']!r}")
    others = [s for s in cfg["subjects"] if s != cfg["action_subject"]]
    check(all(s not in body for s in others), "the filter hides the other actions")
    pages.inspect(driver, "history-filtered")

    # A bad filter is refused next to its field, keeping what was typed.
    driver.get(f"{base}/orgs/{org}/history?since=yesterday")
    check(
        "yesterday" in driver.find_element(By.ID, "f-since").get_attribute("value"),
        "the bad filter is kept",
    )
    check(
        bool(driver.find_elements(By.ID, "e-since")),
        "the problem is shown next to the since field",
    )

    # One commit, opened by its visible subject.
    driver.get(f"{base}/orgs/{org}/history")
    driver.find_element(By.LINK_TEXT, cfg["action_subject"]).click()
    WebDriverWait(driver, 20).until(
        expected_conditions.presence_of_element_located((By.ID, "intent-heading"))
    )
    body = driver.find_element(By.TAG_NAME, "body").text
    check(cfg["commit"] in body, f"the commit page names commit {cfg['commit']}")
    check("What changed in the intent" in body, "the commit page shows the intent diff")
    check(
        bool(driver.find_elements(By.CSS_SELECTOR, "pre.diff ins")),
        "the diff marks added lines",
    )
    check("added" in body, "the commit page lists rendered objects added")
    pages.inspect(driver, "commit")
    return driver.current_url


def project(driver, cfg, pages):
    """The project page: add a CronJob through its labelled form, see it in plain words."""
    base = cfg["base"]
    driver.get(f"{base}{cfg['project']}")
    pages.inspect(driver, "project")
    driver.find_element(By.XPATH, "//summary[normalize-space()='Add a CronJob']").click()
    field(driver, "CronJob name").send_keys("nightly")
    field(driver, "Schedule").send_keys("0 2 * * *")
    field(driver, "Image").send_keys("busybox:1.36")
    before = driver.current_url
    button(driver, "Add CronJob").click()
    WebDriverWait(driver, 20).until(lambda d: d.current_url != before)
    body = driver.find_element(By.TAG_NAME, "body").text
    check("every day at 02:00 UTC" in body, "the CronJob's schedule reads in plain words")
    check(
        bool(driver.find_elements(By.ID, "flash")),
        f"the page shows the commit the action made ({driver.current_url})",
    )
    pages.inspect(driver, "project-after-cronjob")
    return f"{base}{cfg['project']}"


def stranger(driver, cfg, seen):
    """Another organization's user: every page of the first organization is Not found."""
    driver.delete_all_cookies()
    sign_in(driver, cfg, cfg["stranger_email"], cfg["password"], "/")
    for url in seen:
        driver.get(url)
        title = driver.title
        check(title.startswith("Not found"), f"a stranger gets Not found at {url}: {title!r}")
        check(cfg["commit"] not in driver.page_source, f"nothing of the commit leaks at {url}")


def main(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    pages = Pages(cfg)
    profile = tempfile.mkdtemp(prefix="hb-chromium-")
    driver = browser(profile)
    try:
        seen = [f"{cfg['base']}/orgs/{cfg['org']}/history"]
        try:
            seen.append(history(driver, cfg, pages))
        except Exception as error:  # a step that breaks is a failure, not a crash
            said = getattr(error, "msg", None) or repr(error)
            check(False, f"history raised {said}; page: {driver.current_url}")
        try:
            seen.append(project(driver, cfg, pages))
        except Exception as error:
            said = getattr(error, "msg", None) or repr(error)
            check(False, f"project raised {said}; page: {driver.current_url}")
        try:
            stranger(driver, cfg, seen)
        except Exception as error:
            said = getattr(error, "msg", None) or repr(error)
            check(False, f"stranger raised {said}; page: {driver.current_url}")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"{checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
