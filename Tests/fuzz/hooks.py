"""schemathesis hooks for scripts/fuzz-api (loaded through SCHEMATHESIS_HOOKS).

An `Idempotency-Key` is a promise the schema cannot state: one key per logical request. Generated keys repeat (the
same few strings for every operation), and Herald rightly answers a key reused with another body with 422 — which the
fuzzer would count as a schema-valid request rejected. So a key the schema accepts (1-255 characters) is replaced with
a fresh one before each call; an invalid one (empty, too long: the negative cases) is sent as generated.

Centrifugo's methods answer errors with HTTP 200 and `{"error": …}` by default — its protocol, which the fuzzer's
"invalid input is rejected with a 4xx" check cannot tell from acceptance. So every `/api/` call is made in the
transport error mode (`X-Centrifugo-Error-Mode: transport`), where an error is the bare error object with a 4xx/5xx:
every check then applies to Centrifugo's methods as strictly as to the rest. The default mode's envelope is checked
against the document by the `cent` suite's responses (scripts/compat-sdk).
"""
import uuid

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.path.startswith("/api/"):
        for headers in (case.headers, kwargs.get("headers")):
            if headers is not None:
                for name in [n for n in headers if n.lower() == "x-centrifugo-error-mode"]:
                    del headers[name]
                headers["X-Centrifugo-Error-Mode"] = "transport"
    fresh = "fuzz-" + uuid.uuid4().hex
    for headers in (case.headers, kwargs.get("headers")):
        for name in list(headers or {}):
            value = headers[name]
            if name.lower() == "idempotency-key" and isinstance(value, str) and value.strip() and len(value) <= 255:
                headers[name] = fresh
