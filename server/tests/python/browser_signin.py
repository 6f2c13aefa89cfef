"""Signs in to the Hexabase issuer with a real browser, as a person would.

Run by server/tests/oidc_browser.rs against the real `hb serve`, with the project's venv
(.tools/venv, made by scripts/tools.sh): Selenium drives Debian's headless Chromium through
chromedriver. The browser may reach the loopback addresses only: every other host name
resolves to nothing (`--host-resolver-rules`), and background networking is off.

1. The authorization code flow with PKCE, as `kubectl oidc-login` runs it: a loopback
   listener this script owns is the redirect URI; the browser opens the authorization URL,
   is sent to the sign-in page, fills in and submits the form, comes back, and lands on the
   listener with a code, which this script exchanges and verifies with PyJWT (issuer,
   audience, nonce, the flattened groups).
2. The device flow: the browser (signed out again) opens the verification URI `hb login
   --device` printed, signs in, and approves the code shown; the Rust side checks that
   `hb login` then finishes.
3. A `return_to` naming another host (`//evil.example`, `https://evil.example`) is refused,
   in the URL and in a form whose hidden field was changed, and the browser never leaves
   the server.

Usage: browser_signin.py <config.json>; prints `N passed, N failed`.
"""

import base64
import hashlib
import http.server
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

import jwt
import requests

# Selenium Manager would look for a browser and driver to download; both are given here.
os.environ["SE_OFFLINE"] = "true"
os.environ["SE_AVOID_STATS"] = "true"

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

failures = []
checks = 0


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


class Callback(http.server.BaseHTTPRequestHandler):
    """The loopback redirect URI: records the query it is called with."""

    received = []

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        Callback.received.append(urllib.parse.urlsplit(self.path))
        body = b"<!doctype html><title>done</title><p>You may close this window.</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        # Only the loopback addresses resolve: nothing this test does can reach a network.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
    ]:
        options.add_argument(arg)
    service = Service(executable_path="/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


def sign_in(driver, email, password):
    """Fills in and submits the sign-in form the browser shows."""
    wait = WebDriverWait(driver, 20)
    wait.until(expected_conditions.presence_of_element_located((By.NAME, "email")))
    path = urllib.parse.urlsplit(driver.current_url).path
    check(path.endswith("/signin"), f"the browser is on the sign-in page ({driver.current_url})")
    driver.find_element(By.NAME, "email").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    before = driver.current_url
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.current_url != before)


def code_flow(driver, cfg):
    base, issuer, client_id = cfg["base"], cfg["issuer"], cfg["client_id"]
    listener = http.server.HTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    redirect_uri = f"http://127.0.0.1:{listener.server_port}/callback"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    challenge = challenge.rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email groups",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    driver.get(f"{base}/oauth2/authorize?{query}")
    landed = urllib.parse.urlsplit(driver.current_url)
    back = urllib.parse.parse_qs(landed.query).get("return_to", [""])[0]
    check(
        back.startswith("/oauth2/authorize?"),
        f"the sign-in page returns to the authorization request ({driver.current_url})",
    )
    sign_in(driver, cfg["email"], cfg["password"])
    deadline = time.monotonic() + 20
    while not Callback.received and time.monotonic() < deadline:
        time.sleep(0.1)
    listener.shutdown()
    check(bool(Callback.received), f"the browser reached the redirect URI ({driver.current_url})")
    if not Callback.received:
        return
    got = urllib.parse.parse_qs(Callback.received[0].query)
    check(Callback.received[0].path == "/callback", "the redirect URI's path")
    check(got.get("state") == [state], "the state came back")
    check(got.get("iss") == [issuer], "the issuer is named (RFC 9207)")
    code = got.get("code", [""])[0]
    check(bool(code), f"a code came back: {got}")
    answer = requests.post(
        f"{base}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        },
        timeout=10,
    )
    check(answer.status_code == 200, f"the code is exchanged: {answer.text}")
    if answer.status_code != 200:
        return
    tokens = answer.json()
    keys = jwt.PyJWKClient(f"{base}/oauth2/keys")
    key = keys.get_signing_key_from_jwt(tokens["id_token"])
    claims = jwt.decode(
        tokens["id_token"],
        key.key,
        algorithms=["RS256", "ES256"],
        audience=client_id,
        issuer=issuer,
    )
    check(claims["aud"] == client_id, f"aud is the workspace's client: {claims['aud']}")
    check(claims.get("nonce") == nonce, "the nonce came back")
    check(claims.get("email") == cfg["email"], f"the signed-in user: {claims.get('email')}")
    groups = set(claims.get(cfg["groups_claim"], []))
    check(
        {"WSAdmins", "WorkspaceMembers"} <= groups,
        f"the groups are flattened through the hierarchy: {sorted(groups)}",
    )


def device_flow(driver, cfg):
    # A browser that never signed in: the verification URI first asks for the sign-in.
    driver.delete_all_cookies()
    driver.get(cfg["device_uri"])
    sign_in(driver, cfg["email"], cfg["password"])
    wait = WebDriverWait(driver, 20)
    wait.until(expected_conditions.presence_of_element_located((By.NAME, "user_code")))
    path = urllib.parse.urlsplit(driver.current_url).path
    check(path.endswith("/device"), f"back on the device page ({driver.current_url})")
    shown = driver.find_element(By.NAME, "user_code").get_attribute("value")
    check(shown == cfg["user_code"], f"the code is filled in: {shown!r}")
    check(cfg["email"] in driver.page_source, "the page says who approves")
    driver.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
    wait.until(lambda d: "Approved" in d.page_source or "user_code:" in d.page_source)
    check("Approved" in driver.page_source, f"the code is approved: {driver.page_source}")


def foreign_return_to_is_refused(driver, cfg):
    base = cfg["base"]
    driver.delete_all_cookies()
    for evil in ["//evil.example", "https://evil.example", "/\\evil.example"]:
        url = f"{base}/signin?" + urllib.parse.urlencode({"return_to": evil})
        driver.get(url)
        check(driver.current_url.startswith(base), f"{evil}: the browser stayed on the server")
        check("return_to:" in driver.page_source, f"{evil}: the page says return_to is refused")
        check(not driver.find_elements(By.NAME, "password"), f"{evil}: no form is shown")
        # The form's hidden field changed to another host: refused when posted, no session.
        driver.get(f"{base}/signin?return_to=%2F")
        field = driver.find_element(By.NAME, "return_to")
        driver.execute_script("arguments[0].value = arguments[1];", field, evil)
        driver.find_element(By.NAME, "email").send_keys(cfg["email"])
        driver.find_element(By.NAME, "password").send_keys(cfg["password"])
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, 20).until(
            lambda d: "return_to:" in d.page_source or not d.find_elements(By.NAME, "email")
        )
        check(driver.current_url.startswith(base), f"{evil} posted: the browser stayed")
        check("return_to:" in driver.page_source, f"{evil} posted: refused by name")
        check(driver.get_cookie("hb_session") is None, f"{evil} posted: no session was started")


def main(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    profile = tempfile.mkdtemp(prefix="hb-chromium-")
    driver = browser(profile)
    try:
        for step in (code_flow, device_flow, foreign_return_to_is_refused):
            try:
                step(driver, cfg)
            except Exception as error:  # a step that breaks is a failure, not a crash
                said = getattr(error, "msg", None) or repr(error)
                check(False, f"{step.__name__} raised {said}; page: {driver.current_url}")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"{checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
