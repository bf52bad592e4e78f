"""The sign-in and consent pages in a real browser: Playwright driving Debian's chromium (headless)
through the authorization-code + PKCE flow of an installed app, ending with an API call made with
the token the app got."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.auth.conftest import make_user
from tests.conftest import PROJECT, ZONE, unique, wait_op
from tests.helpers.oauth import CLOUD_PLATFORM, EMAIL, GCLOUD_CLIENT_ID, Browser, exchange, pkce

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no chromium at {CHROMIUM} "
                                "(.ci/run installs Debian's chromium package)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


class Loopback:
    """The installed app's loopback redirect target, as gcloud and google-auth-oauthlib run one."""

    def __init__(self):
        self.queries: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if urlsplit(self.path).path == "/":  # not /favicon.ico
                    outer.queries.append({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})
                body = b"<!doctype html><title>Done</title><h1>The authentication flow has completed.</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def chromium():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def loopback():
    app = Loopback()
    yield app
    app.close()


def test_sign_in_consent_and_api_call(server, chromium, loopback):
    from google.oauth2.credentials import Credentials
    from playwright.sync_api import expect

    person = make_user(server, "browser", (PROJECT, "editor"))
    verifier, challenge = pkce()
    url = Browser.new(server.base).auth_url(GCLOUD_CLIENT_ID, loopback.uri, f"openid {EMAIL} {CLOUD_PLATFORM}",
                                            challenge, state="browser-state", access_type="offline")
    page = chromium.new_context(locale="en-US").new_page()
    page.goto(url)
    expect(page).to_have_title("Sign in – gstack")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("to continue to Google Cloud SDK")).to_be_visible()

    # a wrong password: an alert, announced and tied to both fields
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Email")).to_have_value(person.email)

    # the right one, submitted with the keyboard
    page.get_by_label("Password").fill(person.password)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", name="Google Cloud SDK wants to access your gstack account")).to_be_visible()
    expect(page.get_by_text(f"Signed in as {person.email}")).to_be_visible()
    scopes = page.get_by_role("list", name="This will allow Google Cloud SDK to:").get_by_role("listitem")
    expect(scopes).to_have_text(["Associate you with your personal info", "See your primary email address",
                                 "See, edit, configure, and delete your Google Cloud data and see the email address "
                                 "for your Google Account"])
    expect(page.get_by_text(loopback.uri.rstrip("/"))).to_be_visible()

    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="The authentication flow has completed.")).to_be_visible()
    [answer] = loopback.queries
    assert answer["state"] == "browser-state" and answer["code"]

    tokens = exchange(server.base, answer["code"], verifier, loopback.uri)
    assert tokens.status_code == 200, tokens.text
    gce = server.gce(credentials=Credentials(tokens.json()["access_token"]))
    op = gce.disks().insert(project=PROJECT, zone=ZONE, body={"name": unique("browser"), "sizeGb": "10"}).execute()
    assert wait_op(gce, op)["status"] == "DONE" and op["user"] == person.email

    # the code was for one use only
    assert exchange(server.base, answer["code"], verifier, loopback.uri).json()["error"] == "invalid_grant"


def test_signed_in_user_denies(server, chromium, loopback):
    person = make_user(server, "denier", (PROJECT, "viewer"))
    context = chromium.new_context()
    page = context.new_page()
    url = Browser.new(server.base).auth_url(GCLOUD_CLIENT_ID, loopback.uri, CLOUD_PLATFORM, pkce()[1], state="d")
    page.goto(url)
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(loopback.uri + "**")
    assert loopback.queries == [{"error": "access_denied", "state": "d"}]
    # the session cookie is HttpOnly and the page can be framed by nobody
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["gstack_session"]["httpOnly"] and cookies["gstack_csrf"]["httpOnly"]
    assert cookies["gstack_session"]["sameSite"] == "Lax"
    headers = requests.get(url, cookies={"gstack_session": cookies["gstack_session"]["value"]}).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_gcloud_auth_login(server, chromium, tmp_path):
    """The real ``gcloud auth login``: gcloud opens the browser (a script hands the URL to Playwright),
    waits on its loopback port, exchanges the code at gstack's /token, and its user credentials then
    drive ``gcloud compute``."""
    import json
    import shutil
    import subprocess
    import time

    if shutil.which("gcloud") is None:
        pytest.skip("the gcloud CLI is not installed here")
    if server.backend != "sqlite":
        pytest.skip("gcloud's login tests the wire, not the database: it runs once, on SQLite")
    person = make_user(server, "gcloud", (PROJECT, "editor"))
    url_file, opener = tmp_path / "url.txt", tmp_path / "browser.sh"
    opener.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" > {url_file}\n")
    opener.chmod(0o755)
    # gcloud launches a browser only where it sees a display; plain-HTTP token URLs need oauthlib's opt-in.
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "config"), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
           "DISPLAY": ":99", "BROWSER": str(opener), "OAUTHLIB_INSECURE_TRANSPORT": "1"}

    def gcloud(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["gcloud", *args], env=env, capture_output=True, text=True, timeout=120)

    for prop, value in (("core/project", PROJECT), ("component_manager/disable_update_check", "true"),
                        ("core/check_gce_metadata", "false"), ("api_endpoint_overrides/compute", server.api),
                        ("auth/auth_host", server.base + "/o/oauth2/auth"), ("auth/token_host", server.base + "/token")):
        assert gcloud("config", "set", prop, value).returncode == 0
    login = subprocess.Popen(["gcloud", "auth", "login", "--launch-browser"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not url_file.exists() and login.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert url_file.exists(), login.communicate(timeout=5)
        page = chromium.new_page()
        page.goto(url_file.read_text().strip())
        page.get_by_label("Email").fill(person.email)
        page.get_by_label("Password").fill(person.password)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Allow").click()
        out, err = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 0, err
    assert f"You are now logged in as [{person.email}]" in err
    disk = unique("gclogin")
    created = gcloud("compute", "disks", "create", disk, "--size", "10GB", "--zone", ZONE)
    assert created.returncode == 0, created.stderr
    described = json.loads(gcloud("compute", "disks", "describe", disk, "--zone", ZONE, "--format", "json").stdout)
    assert described["name"] == disk and described["status"] == "READY"
    token = gcloud("auth", "print-access-token").stdout.strip()
    info = requests.get(server.base + "/tokeninfo", params={"access_token": token}).json()
    assert info["email"] == person.email and info["azp"] == GCLOUD_CLIENT_ID
