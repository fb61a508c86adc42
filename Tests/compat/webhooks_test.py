"""Status webhooks end to end against a live Herald (README §Status webhooks, issue #23), verified with the
`standardwebhooks` package from PyPI — the reference implementation of the specification, not Herald's code.

A local receiver stands in for the application: it accepts the push-webhook integration's deliveries on /push and the
status events on /events, answering the first attempt of every event 503 and the second 200. The test checks that
every event of a trigger arrives, verifies, carries the ids that locate it, comes twice under the same `webhook-id`
(503, then 200) and is listed as delivered after 2 attempts; that events produced while the endpoint is disabled wait
and arrive on replay, signed with the rotated secret and, for a day, the old one; and that endpoint URLs to private and metadata addresses are
refused at create and at update.

Environment: HERALD_URL, HERALD_WEBHOOKS_KEY (a key of an environment of its own).
"""
import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

URL = os.environ["HERALD_URL"]
KEY = os.environ["HERALD_WEBHOOKS_KEY"]
failures = []


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + (f" ({detail})" if detail and not condition else ""), flush=True)
    if not condition:
        failures.append(name)


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(URL + path, data=data, method=method,
                                     headers={"Authorization": f"ApiKey {KEY}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.events = []  # (webhook-id, timestamp, signature, body bytes, answered status)
        self.pushes = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        status = 200
        with server.lock:
            if self.path == "/events":
                seen = any(e[0] == self.headers.get("webhook-id") for e in server.events)
                status = 200 if seen else 503
                server.events.append((self.headers.get("webhook-id"), self.headers.get("webhook-timestamp"),
                                      self.headers.get("webhook-signature"), body, status))
            else:
                server.pushes += 1
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def verify(secret, event):
    webhook_id, timestamp, signature, body, _ = event
    try:
        return Webhook(secret).verify(body, {"webhook-id": webhook_id, "webhook-timestamp": timestamp,
                                             "webhook-signature": signature})
    except WebhookVerificationError:
        return None


receiver = Receiver()
threading.Thread(target=receiver.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{receiver.server_address[1]}"
run = uuid.uuid4().hex[:8]
started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))

# SSRF: private and metadata addresses are refused at create and at update.
for url in ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/hook", "https://[::1]/hook"]:
    status, body = call("POST", "/v1/webhooks", {"url": url})
    check(f"create with {url} -> 422", status == 422 and "url" in (body.get("errors") or {}), f"{status} {body}")

status, created = call("POST", "/v1/webhooks", {"url": base + "/events", "description": "compat",
                                                "eventTypes": ["message.*", "notification.completed"]})
check("create endpoint -> 201 with a whsec_ secret", status == 201 and created["data"]["secret"].startswith("whsec_"),
      f"{status} {created}")
endpoint = created["data"]["_id"]
secret = created["data"]["secret"]
status, body = call("PATCH", f"/v1/webhooks/{endpoint}", {"url": "http://169.254.169.254/"})
check("update to a metadata address -> 422", status == 422, f"{status}")
status, body = call("GET", f"/v1/webhooks/{endpoint}")
check("get endpoint shows no secret", status == 200 and "secret" not in body["data"]
      and body["data"]["eventTypes"] == ["message.*", "notification.completed"], f"{body}")
status, body = call("POST", "/v1/webhooks", {"url": base + "/x", "eventTypes": ["message.bogus"]})
check("unknown event type -> 422 naming it", status == 422 and "eventTypes[0]" in (body.get("errors") or {}), f"{body}")

status, body = call("POST", "/v1/integrations", {"providerId": "push-webhook", "channel": "push", "identifier": f"wh-{run}",
                                                 "active": True, "credentials": {"webhookUrl": base + "/push"}})
check("push-webhook integration -> 201", status == 201, f"{status} {body}")

# A trigger to three subscribers: each gets a push (message.sent) and completes (notification.completed).
tx = f"wh-tx-{run}"
recipients = [{"subscriberId": f"wh-{run}-{i}", "channels": [{"providerId": "push-webhook",
                                                                  "credentials": {"deviceTokens": [f"tok-{run}-{i}"]}}]}
              for i in range(3)]
status, body = call("POST", "/v1/events/trigger", {"name": "order-shipped", "to": recipients, "payload": {"orderId": "W-1"},
                                                   "transactionId": tx})
check("trigger -> 201", status == 201, f"{status} {body}")


def delivered_ids():
    with receiver.lock:
        return {e[0] for e in receiver.events if e[4] == 200}


check("6 events delivered within 30 s", wait_for(lambda: len(delivered_ids()) >= 6, 30), f"{len(delivered_ids())}")
time.sleep(1)
with receiver.lock:
    events = list(receiver.events)
by_id = {}
for event in events:
    by_id.setdefault(event[0], []).append(event)
check("exactly 6 distinct events", len(by_id) == 6, f"{len(by_id)}")
check("each event came twice under one webhook-id: 503 then 200",
      all([e[4] for e in attempts] == [503, 200] for attempts in by_id.values()),
      f"{ {k: [e[4] for e in v] for k, v in by_id.items()} }")
payloads = [verify(secret, attempts[-1]) for attempts in by_id.values()]
check("every attempt verifies with standardwebhooks", all(verify(secret, e) is not None for e in events))
tampered = events[0][:3] + (events[0][3].replace(b"order-shipped", b"order-shipper"),) + events[0][4:]
check("a tampered body does not verify", verify(secret, tampered) is None)
types = sorted(p["type"] for p in payloads if p)
check("3 message.sent and 3 notification.completed", types == ["message.sent"] * 3 + ["notification.completed"] * 3, f"{types}")
subscribers = {f"wh-{run}-{i}" for i in range(3)}
sent = [p["data"] for p in payloads if p and p["type"] == "message.sent"]
check("message.sent carries the ids", all(d.get("transactionId") == tx and d.get("subscriberId") in subscribers
                                          and d.get("workflowId") == "order-shipped" and d.get("messageId")
                                          and d.get("channel") == "push" and d.get("providerId") == "push-webhook"
                                          and d.get("notificationId") for d in sent), f"{sent}")
check("no message body in an event", all(b"has shipped" not in e[3] for e in events))

status, body = call("GET", f"/v1/webhooks/{endpoint}/deliveries?status=delivered")
check("deliveries: 6 delivered after 2 attempts, last status 200",
      status == 200 and len(body["data"]) == 6 and all(d["attempts"] == 2 and d["lastStatus"] == 200 for d in body["data"]),
      f"{status} {body}")

# Disabled: events wait (pending); enabled and replayed, they arrive — signed with the rotated secret.
status, body = call("PATCH", f"/v1/webhooks/{endpoint}", {"disabled": True})
check("disable -> 200", status == 200 and body["data"]["disabled"] and body["data"]["disabledReason"] == "api", f"{body}")
status, body = call("POST", "/v1/events/trigger", {"name": "order-shipped", "to": recipients[:1], "payload": {"orderId": "W-2"},
                                                   "transactionId": tx + "-2"})
check("trigger while disabled -> 201", status == 201)
check("2 events pending while disabled", wait_for(
    lambda: len(call("GET", f"/v1/webhooks/{endpoint}/deliveries?status=pending")[1]["data"]) == 2, 20))
with receiver.lock:
    before = len(receiver.events)
status, body = call("POST", f"/v1/webhooks/{endpoint}/replay", {"since": started})
check("replay while disabled -> 409", status == 409, f"{status}")
status, rotated = call("POST", f"/v1/webhooks/{endpoint}/rotate-secret")
check("rotate-secret -> a new secret", status == 200 and rotated["data"]["secret"] != secret, f"{status}")
new_secret = rotated["data"]["secret"]
status, body = call("PATCH", f"/v1/webhooks/{endpoint}", {"disabled": False})
check("enable -> 200", status == 200 and not body["data"]["disabled"])
status, body = call("POST", f"/v1/webhooks/{endpoint}/replay", {"since": started})
check("replay -> 202, 2 queued", status == 202 and body["data"]["queued"] == 2, f"{status} {body}")
check("replayed events delivered", wait_for(lambda: len(delivered_ids()) >= 8, 30), f"{len(delivered_ids())}")
with receiver.lock:
    replayed = receiver.events[before:]
check("replayed events verify with the new secret, and for a day with the old one too (two signatures)",
      replayed and all(verify(new_secret, e) and verify(secret, e) and len(e[2].split(" ")) == 2 for e in replayed),
      f"{[(e[2], bool(verify(new_secret, e)), bool(verify(secret, e))) for e in replayed]}")
check("a third secret verifies nothing", all(verify("whsec_" + "A" * 32, e) is None for e in replayed))

status, body = call("DELETE", f"/v1/webhooks/{endpoint}")
check("delete -> 200", status == 200 and body["data"]["acknowledged"] is True)
status, body = call("GET", f"/v1/webhooks/{endpoint}")
check("deleted endpoint -> 404", status == 404)

print(f"webhooks: {len(failures)} failed")
sys.exit(1 if failures else 0)
