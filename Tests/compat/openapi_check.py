"""Holds Herald's responses to its OpenAPI document (openapi/herald.yaml, served as /openapi.json).

Two commands, used by scripts/compat-sdk around the SDK suites:

    openapi_check.py proxy --target URL --port-file F --record R.jsonl
        a recording reverse proxy: the SDKs talk to it, it forwards to Herald and appends every exchange
        (method, path, status, content type, body) to R.jsonl;
    openapi_check.py validate --document URL|FILE --record R.jsonl [--label TEXT]
        checks every recorded response of a documented route against the document: the status is listed for the
        operation, the content type is the documented one, and the body validates against the
        response's JSON Schema (jsonschema, Draft 2020-12, the dialect of OpenAPI 3.1). Prints the counts; exit
        status 1 on any violation.
"""
import argparse
import http.client
import http.server
import json
import re
import sys
import threading
import urllib.parse
import urllib.request

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def proxy(args):
    target = urllib.parse.urlsplit(args.target)
    lock = threading.Lock()
    local = threading.local()
    record = open(args.record, "a", encoding="utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
            for attempt in range(2):
                connection = getattr(local, "connection", None)
                if connection is None:
                    connection = local.connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    break
                except (http.client.HTTPException, OSError):
                    connection.close()
                    local.connection = None
                    if attempt == 1:
                        raise
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            entry = {"method": self.command, "path": self.path, "status": response.status,
                     "content_type": response.getheader("Content-Type") or "",
                     "body": data.decode("utf-8", errors="replace")}
            with lock:
                record.write(json.dumps(entry) + "\n")
                record.flush()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(args.port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


class Document:
    """The operations of an OpenAPI document, matched by method and concrete path."""

    def __init__(self, document):
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012
        self.document = document
        self.registry = Registry().with_resource("urn:herald", Resource.from_contents(document, default_specification=DRAFT202012))
        self.validator_class = Draft202012Validator
        self.routes = []
        for template, item in document["paths"].items():
            pattern = "^" + "/".join("[^/]+" if re.fullmatch(r"\{[^/}]+\}", part) else re.escape(part)
                                     for part in template.split("/")) + "$"
            literal = len(re.sub(r"\{[^}]+\}", "", template))
            self.routes.append((literal, template, re.compile(pattern), item))
        # The most literal template wins (/v1/subscribers/bulk over /v1/subscribers/{subscriberId}).
        self.routes.sort(key=lambda route: -route[0])

    def operation(self, method, path):
        for _, template, pattern, item in self.routes:
            if pattern.match(path) and method.lower() in item:
                return template, item[method.lower()]
        return None, None

    def check(self, entry):
        """The violations of one recorded exchange (empty when it conforms)."""
        path = urllib.parse.urlsplit(entry["path"]).path
        template, operation = self.operation(entry["method"], path)
        if operation is None:
            return None, None
        responses = operation.get("responses", {})
        status = str(entry["status"])
        key = status if status in responses else (status[0] + "XX" if status[0] + "XX" in responses else "default")
        if key not in responses:
            return template, [f"status {status} is not documented (documented: {', '.join(sorted(responses))})"]
        response = responses[key]
        pointer = f"/paths/{_escape(template)}/{entry['method'].lower()}/responses/{key}"
        if "$ref" in response:
            pointer = response["$ref"].lstrip("#")
            response = self.resolve(response["$ref"])
        content = response.get("content") or {}
        media = entry["content_type"].split(";")[0].strip().lower()
        if not content:
            return template, [] if not entry["body"] else [f"status {status} documents no body, got {len(entry['body'])} bytes"]
        if media not in content:
            return template, [f"content type {media!r} is not documented ({', '.join(content)})"]
        if "schema" not in content[media] or not media.endswith("json"):
            return template, []
        try:
            body = json.loads(entry["body"])
        except ValueError as error:
            return template, [f"the body is not JSON: {error}"]
        schema = {"$ref": f"urn:herald#{pointer}/content/{_escape(media)}/schema"}
        validator = self.validator_class(schema, registry=self.registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        return template, [f"body{''.join(f'[{p!r}]' for p in e.absolute_path)}: {e.message[:300]}" for e in errors[:5]]

    def resolve(self, ref):
        node = self.document
        for part in ref.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node


def _escape(part):
    return part.replace("~", "~0").replace("/", "~1")


def load_document(location):
    """The document from a URL (`/openapi.json` of a live server) or a file (`openapi/herald.yaml`: needs PyYAML)."""
    if re.match(r"^https?://", location):
        with urllib.request.urlopen(location) as response:
            return json.load(response)
    with open(location, encoding="utf-8") as f:
        if location.endswith(".json"):
            return json.load(f)
        import yaml
        return yaml.safe_load(f)


def validate(args):
    document = Document(load_document(args.document))
    checked = 0
    undocumented = set()
    operations = set()
    failures = []
    with open(args.record, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            template, violations = document.check(entry)
            if violations is None:
                # A path or method no route serves (a test's 404 or 405 probe): OpenAPIContractTests holds every served
                # route documented.
                undocumented.add(f"{entry['method']} {urllib.parse.urlsplit(entry['path']).path}")
                continue
            checked += 1
            if template:
                operations.add(f"{entry['method']} {template}")
            for violation in violations:
                failures.append(f"{entry['method']} {entry['path']} -> {entry['status']}: {violation}")
    documented = sum(1 for item in document.document["paths"].values() for m in item if m in
                     ("get", "put", "post", "patch", "delete", "head", "options"))
    for failure in failures[:60]:
        print("FAIL", failure)
    print(f"openapi: {checked} responses of {args.label} checked against the document, "
          f"{len(operations)} of {documented} operations seen, {len(failures)} violations; "
          f"{len(undocumented)} distinct requests to paths or methods no route serves skipped")
    return 1 if failures or checked == 0 else 0


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("proxy")
    p.add_argument("--target", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--record", required=True)
    v = commands.add_parser("validate")
    v.add_argument("--document", required=True)
    v.add_argument("--record", required=True)
    v.add_argument("--label", default="the SDK suites")
    args = parser.parse_args()
    if args.command == "proxy":
        proxy(args)
    else:
        sys.exit(validate(args))


if __name__ == "__main__":
    main()
