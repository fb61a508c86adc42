"""herald dev's receipt loop (docs/webhooks.md §Provider receipts): the simulator's Twilio and Resend emulators post
signed receipts back to Herald, which applies them — a delivered SMS and email become `provider_delivered` (and the
email `provider_opened`), and a bounce puts the address on the suppression list, so the next send to it is skipped.
Run by scripts/browser-test against the same `herald dev`.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

URL = os.environ["HERALD_URL"]
KEY = os.environ["HERALD_KEY"]
failures = []


def check(name, condition, detail=""):
    print(f"{'ok  ' if condition else 'FAIL'} {name}" + (f": {detail}" if detail and not condition else ""))
    if not condition:
        failures.append(name)


def api(method, path, body=None):
    request = urllib.request.Request(URL + path, data=json.dumps(body).encode() if body is not None else None, method=method)
    request.add_header("Authorization", f"ApiKey {KEY}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(predicate, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def details(transaction):
    _, page = api("GET", f"/v1/notifications?transactionId={transaction}")
    result = {}
    for notification in page["data"]:
        for job in notification["jobs"]:
            result[(notification["subscriber"]["subscriberId"], job["stepId"])] = [d["detail"] for d in job["executionDetails"]]
    return result


_, integrations = api("GET", "/v1/integrations")
resend = next(i for i in integrations["data"] if i["identifier"] == "dev-resend")
status, _ = api("POST", f"/v1/integrations/{resend['_id']}/set-primary")
check("Resend is the primary email integration", status in (200, 201), str(status))
bouncer = f"bouncer-{uuid.uuid4().hex[:6]}"
api("POST", "/v1/subscribers", {"subscriberId": bouncer, "email": f"bounce-{bouncer}@example.com"})
transaction = f"loop-{uuid.uuid4()}"
status, _ = api("POST", "/v1/events/trigger", {"name": "password-reset", "to": ["demo", bouncer], "transactionId": transaction,
                                               "payload": {"resetUrl": "https://example.com/reset/x", "code": "424242"}})
check("the trigger is accepted", status == 201, str(status))
check("the SMS receipt (Twilio's signed status callback) comes back: provider_delivered",
      wait_for(lambda: "provider_delivered" in details(transaction).get(("demo", "sms"), [])))
check("the email receipts (Resend, Svix-signed) come back: provider_delivered and provider_opened",
      wait_for(lambda: {"provider_delivered", "provider_opened"} <= set(details(transaction).get(("demo", "email"), []))))
check("the bounce comes back and the address is suppressed",
      wait_for(lambda: f"bounce-{bouncer}@example.com" in json.dumps(api("GET", "/v1/suppressions?channel=email")[1])))
again = f"loop-{uuid.uuid4()}"
api("POST", "/v1/events/trigger", {"name": "password-reset", "to": [bouncer], "transactionId": again,
                                   "payload": {"resetUrl": "https://example.com/reset/y", "code": "434343"}})
check("the next email to the bounced address is skipped as suppressed",
      wait_for(lambda: "suppressed" in details(again).get((bouncer, "email"), [])), str(details(again)))
smtp = next(i for i in integrations["data"] if i["identifier"] == "dev-smtp")
api("POST", f"/v1/integrations/{smtp['_id']}/set-primary")  # as herald dev set it up
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
