"""The operator console in a real browser (Chromium through Selenium), against a live `herald dev`.

Proves the promises of docs/console.md that only a browser can: sign-in and sign-out, a notification triggered through
the API showing up in Activity with its timeline, a re-drive and an integration switch done by clicking, the XSS probe
staying inert text, a state change without the CSRF token refused, and a request without the session redirected to
sign-in. Takes a screenshot of every page (docs/console/*.png in the README). Run by scripts/browser-test.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ["HERALD_URL"]
KEY = os.environ["HERALD_KEY"]
SIMULATOR = os.environ["HERALD_SIMULATOR_URL"]
SHOTS = os.environ["HERALD_SCREENSHOTS"]
XSS = "<img src=x onerror=alert(1)>"
failures = []


def check(name, condition, detail=""):
    print(f"{'ok  ' if condition else 'FAIL'} {name}" + (f": {detail}" if detail and not condition else ""))
    if not condition:
        failures.append(name)


def api(method, path, body=None, base=URL, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if base == URL:
        request.add_header("Authorization", f"ApiKey {KEY}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text.startswith(("{", "[")) else text)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(predicate, timeout=15.0, interval=0.25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    return None


def shot(driver, name):
    # Tall enough for the whole page, so the README's pictures show everything.
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 700)")
    driver.set_window_size(1360, min(height + 40, 4000))
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    driver.set_window_size(1360, 900)


def click(driver, element):
    """Clicks a link or submit button and waits for the next page to load."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_):
        # The old document is gone once its node is stale; chromedriver sometimes says so with a generic "does not
        # belong to the document" error instead of StaleElementReferenceException (which staleness_of alone expects).
        try:
            page.is_enabled()
            return False
        except WebDriverException:
            return True

    WebDriverWait(driver, 15).until(replaced)
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def no_alert(driver):
    try:
        driver.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


options = webdriver.ChromeOptions()
for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1360,900",
                 "--lang=en-US"]:
    options.add_argument(argument)
options.binary_location = "/usr/bin/chromium"
driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(20)
try:
    # A hostile subscriber, created through the API before anyone looks.
    status, _ = api("POST", "/v1/subscribers", {"subscriberId": "xss-probe", "firstName": XSS, "lastName": "</td><script>alert(2)</script>"})
    check("the XSS probe subscriber is created", status in (200, 201), str(status))

    # Without a session: redirected to sign-in.
    driver.get(URL + "/console/activity")
    check("a page without the session redirects to sign-in", "/console/sign-in" in driver.current_url, driver.current_url)
    shot(driver, "sign-in")
    driver.find_element(By.ID, "key").send_keys("not-a-key-" + "x" * 20)
    click(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    check("a wrong key is refused", "not an active secret key" in driver.page_source, driver.current_url + " " + driver.page_source[:1500])

    # Sign in; back on the page first asked for.
    driver.find_element(By.ID, "key").send_keys(KEY)
    click(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    check("sign-in lands on the page asked for", driver.current_url.endswith("/console/activity"), driver.current_url)
    cookie = driver.get_cookie("herald_console")
    check("the session cookie is HttpOnly and SameSite=Strict",
          cookie is not None and cookie.get("httpOnly") is True and cookie.get("sameSite") == "Strict", str(cookie))
    check("the key is on no page", KEY not in driver.page_source)

    # Trigger through the API and watch it appear in Activity.
    transaction = f"browser-{uuid.uuid4()}"
    status, _ = api("POST", "/v1/events/trigger", {"name": "order-shipped", "to": "demo", "transactionId": transaction,
                                                   "payload": {"orderId": "B-42", "eta": "2026-12-05T10:00:00Z"}})
    check("the trigger is accepted", status == 201, str(status))

    def appeared():
        driver.get(URL + "/console/activity?transaction=" + transaction)
        rows = driver.find_elements(By.CSS_SELECTOR, "#notifications tbody a[href^='/console/activity/']")
        return rows[0] if rows and "completed" in driver.page_source else None

    link = wait_for(appeared)
    check("the notification appears in Activity, completed", link is not None)
    driver.get(URL + "/console/activity")
    shot(driver, "activity")
    if link is not None:
        driver.get(URL + "/console/activity?transaction=" + transaction)
        click(driver, driver.find_element(By.CSS_SELECTOR, "#notifications tbody a[href^='/console/activity/']"))
        check("the timeline shows the push step", driver.find_elements(By.ID, "step-push") != [])
        delivered = driver.find_elements(By.CSS_SELECTOR, "tr.delivery[data-status=delivered]")
        check("the timeline lists the delivered deliveries, one per device", len(delivered) >= 8, str(len(delivered)))
        check("the payload is shown", "B-42" in driver.page_source)
        shot(driver, "timeline")

    # A dead letter: Slack answers 503 twice and the retry budget is two attempts (scripts/browser-test sets
    # HERALD_RETRY_MAX_ATTEMPTS=2), so incident-alert's Slack message dies; re-drive it from Dead letters.
    status, _ = api("POST", "/_control/chat/faults", {"provider": "slack", "status": 503, "body": "unavailable", "times": 2},
                    base=SIMULATOR)
    check("the Slack fault is set", status in (200, 201, 204), str(status))
    status, _ = api("POST", "/v1/events/trigger", {"name": "incident-alert", "to": "demo",
                                                   "payload": {"service": "checkout", "severity": "critical", "summary": "p99 > 2 s"}})
    check("the incident trigger is accepted", status == 201, str(status))

    def dead_row():
        driver.get(URL + "/console/dead-letters")
        rows = driver.find_elements(By.CSS_SELECTOR, "#dead-letters tr.delivery")
        return rows or None

    rows = wait_for(dead_row, timeout=30)
    check("the dead Slack delivery is listed in Dead letters", rows is not None and "slack" in driver.page_source)
    shot(driver, "dead-letters")
    if rows:
        delivery_id = rows[0].find_element(By.CSS_SELECTOR, "td.mono").text
        check("it was tried twice", rows[0].find_element(By.CSS_SELECTOR, "td.num").text == "2",
              rows[0].find_element(By.CSS_SELECTOR, "td.num").text)
        click(driver, rows[0].find_element(By.CSS_SELECTOR, "button.redrive"))
        check("the re-drive returns to the list", "/console/dead-letters" in driver.current_url, driver.current_url)

        def redelivered():
            _, page = api("GET", "/v1/deliveries?status=delivered&providerId=slack&limit=50")
            return any(item["_id"] == delivery_id for item in page.get("data", [])) if isinstance(page, dict) else False

        check("the re-driven delivery is delivered", wait_for(redelivered) is True)

    # Deactivate an integration by clicking.
    driver.get(URL + "/console/integrations")
    shot(driver, "integrations")
    row = driver.find_element(By.ID, "integration-dev-vonage")
    click(driver, row.find_element(By.CSS_SELECTOR, "button.deactivate"))
    _, integrations = api("GET", "/v1/integrations")
    vonage = [item for item in integrations["data"] if item["identifier"] == "dev-vonage"]
    check("the integration is inactive after the click", vonage and vonage[0]["active"] is False, str(vonage))
    check("the page shows it inactive", "inactive" in driver.find_element(By.ID, "integration-dev-vonage").text)

    # A state change without the CSRF token, with the browser's own session cookie: refused.
    session_cookie = driver.get_cookie("herald_console")["value"]
    request = urllib.request.Request(URL + f"/console/integrations/{vonage[0]['_id']}/active", data=b"active=true", method="POST")
    request.add_header("Cookie", f"herald_console={session_cookie}")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        urllib.request.urlopen(request, timeout=10)
        csrf_status = 200
    except urllib.error.HTTPError as error:
        csrf_status = error.code
    check("a state change without the CSRF token is refused (403)", csrf_status == 403, str(csrf_status))
    _, integrations = api("GET", "/v1/integrations")
    check("and changed nothing", [i for i in integrations["data"] if i["identifier"] == "dev-vonage"][0]["active"] is False)

    # The XSS probe: shown as text, no alert, no element injected.
    driver.get(URL + "/console/subscribers?q=xss-probe")
    click(driver, driver.find_element(By.LINK_TEXT, "xss-probe"))
    check("no alert fires on the subscriber page", no_alert(driver))
    check("the hostile name is shown as text", XSS in driver.find_element(By.ID, "subscriber-name").text)
    check("no <img> or <script> was injected",
          driver.find_elements(By.CSS_SELECTOR, "main img") == [] and len(driver.find_elements(By.CSS_SELECTOR, "script")) == 1)
    shot(driver, "subscriber-xss")
    driver.get(URL + "/console/subscribers")
    check("no alert fires on the subscriber list", no_alert(driver))
    shot(driver, "subscribers")
    driver.get(URL + "/console/subscribers/demo")
    shot(driver, "subscriber")

    # A raw Centrifugo send, for the push sends page.
    status, answer = api("POST", "/api/send_push_notification",
                         {"recipient": {"filter": {"users": ["demo"]}},
                          "notification": {"fcm": {"message": {"notification": {"title": "Raw", "body": "hello"}}}},
                          "uid": "browser-raw-1"}, headers={"X-API-Key": KEY})
    check("a raw push is sent", status == 200 and "error" not in str(answer), str(answer))
    wait_for(lambda: api("GET", "/v1/push-stats?uid=browser-raw-1")[1].get("data", {}).get("status") == "completed", timeout=10)
    driver.get(URL + "/console/pushes")
    check("the raw send is listed", "browser-raw-1" in driver.page_source)
    shot(driver, "pushes")
    click(driver, driver.find_element(By.LINK_TEXT, "browser-raw-1"))
    check("its per-provider statistics are shown", driver.find_elements(By.CSS_SELECTOR, "#push-stats tbody tr") != [])
    shot(driver, "push")

    # Workflows: the list, one workflow's graph and source.
    driver.get(URL + "/console/workflows")
    check("the workflows are listed with their state", "order-shipped" in driver.page_source and "valid" in driver.page_source)
    shot(driver, "workflows")
    driver.get(URL + "/console/workflows/order-shipped")
    check("the step graph is drawn", driver.find_elements(By.CSS_SELECTOR, "figure.graph svg g.node") != [])
    shot(driver, "workflow")

    # The overview, with what happened above.
    driver.get(URL + "/console")
    charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart rect[class^='s-']")
    check("the overview draws its charts from the counters", len(charts) > 0)
    check("no alert fires anywhere", no_alert(driver))
    shot(driver, "overview")

    # Sign out; the session is gone.
    click(driver, driver.find_element(By.ID, "sign-out"))
    check("sign-out lands on sign-in", "/console/sign-in" in driver.current_url, driver.current_url)
    driver.get(URL + "/console/integrations")
    check("after sign-out the console redirects to sign-in", "/console/sign-in" in driver.current_url, driver.current_url)
    request = urllib.request.Request(URL + "/console", method="GET")
    request.add_header("Cookie", f"herald_console={session_cookie}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        urllib.request.build_opener(NoRedirect).open(request, timeout=10)
        old_status = 200
    except urllib.error.HTTPError as error:
        old_status = error.code
    check("the signed-out cookie no longer opens a page (303)", old_status == 303, str(old_status))
finally:
    driver.quit()

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
