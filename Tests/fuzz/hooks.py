"""schemathesis hooks for scripts/fuzz-api (loaded through SCHEMATHESIS_HOOKS).

An `Idempotency-Key` is a promise the schema cannot state: one key per logical request. Generated keys repeat (the
same few strings for every operation), and Herald rightly answers a key reused with another body with 422 — which the
fuzzer would count as a schema-valid request rejected. So a key the schema accepts (1-255 characters) is replaced with
a fresh one before each call; an invalid one (empty, too long: the negative cases) is sent as generated.
"""
import uuid

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    fresh = "fuzz-" + uuid.uuid4().hex
    for headers in (case.headers, kwargs.get("headers")):
        for name in list(headers or {}):
            value = headers[name]
            if name.lower() == "idempotency-key" and isinstance(value, str) and value.strip() and len(value) <= 255:
                headers[name] = fresh
