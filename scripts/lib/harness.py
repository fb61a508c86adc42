"""Process helpers shared by the crash test and the benchmarks: start `herald simulate` and `herald serve` on free
loopback ports, call the API, read simulator stats, measure RSS."""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

API_KEY = "hk_bench_" + "0" * 32

PUSH_WORKFLOW = """workflow: fanout
name: Fan-out
steps:
  - id: push
    type: push
    title: "Hello {{subscriber.subscriberId}}"
    body: "Message {{payload.n}}"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, key=API_KEY, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "ApiKey " + key)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
            return resp.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, (json.loads(text) if text.startswith("{") else text)


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {url}")


class Simulator:
    """`herald simulate`: `url` is the plain listener, `tls_url` the HTTP/2 TLS one whose CA is in `ca_file` (give it to
    Herald as HERALD_CA_FILE)."""

    def __init__(self, binary):
        self.ca_file = tempfile.mktemp(prefix="herald-sim-ca-", suffix=".pem")
        self.process = subprocess.Popen([os.path.abspath(binary), "simulate", "--port", "0", "--ca-file", self.ca_file],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        if "listening on" not in line:
            raise SystemExit("simulator did not start: " + line)
        self.url = line.strip().rsplit(" ", 1)[-1]
        line = self.process.stdout.readline()
        if "tls on" not in line:
            raise SystemExit("simulator TLS listener did not start: " + line)
        self.tls_url = line.strip().rsplit(" ", 1)[-1]

    def push_stats(self, since=None):
        return request("GET", self.url + "/_control/push/stats" + (f"?since={since}" if since else ""), key=None)[1]

    def dev_integrations(self):
        return request("GET", f"{self.url}/_control/dev/integrations?tls={self.tls_url}", key=None)[1]["data"]

    def stats(self):
        return request("GET", self.url + "/_control/stats", key=None)[1]

    def set_secret(self, hook, secret):
        request("PUT", f"{self.url}/_control/secrets/{hook}", {"secret": secret}, key=None)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        try:
            os.unlink(self.ca_file)
        except OSError:
            pass


class Server:
    """`herald serve` on a fixed free port over a database that survives restarts."""

    def __init__(self, binary, workdir, database=None, env=None, args=()):
        self.binary = os.path.abspath(binary)
        self.workdir = workdir
        self.port = free_port()
        self.database = database or f"sqlite://{workdir}/herald.sqlite"
        os.makedirs(f"{workdir}/workflows", exist_ok=True)
        # The simulator listens on loopback, which the SSRF guard refuses unless the operator allows it.
        self.env = dict(os.environ, HERALD_API_KEY=API_KEY, HERALD_LOG_LEVEL="error", HERALD_DATABASE_URL=self.database,
                        HERALD_ALLOW_PRIVATE_NETWORK="127.0.0.1")
        self.env.update(env or {})
        self.args = list(args)
        self.process = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self):
        self.log = open(f"{self.workdir}/server.log", "a")
        self.process = subprocess.Popen(
            [self.binary, "serve", "--port", str(self.port), "--workflows", f"{self.workdir}/workflows", *self.args],
            cwd=self.workdir, env=self.env, stdout=self.log, stderr=self.log)
        wait_http(self.url + "/readyz")

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        """Stops the server with SIGTERM; returns False when it had to be killed after 30 s."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # A server that does not stop on SIGTERM is a finding, not a reason to leave it running.
                print(f"herald did not stop within 30 s of SIGTERM; killed (log: {self.workdir}/server.log)", file=sys.stderr)
                self.process.kill()
                self.process.wait()
                return False
        return True

    def rss_kb(self):
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except FileNotFoundError:
            return 0
        return 0

    def hwm_kb(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0


def sqlite_seed_topic(database_path, topic, count, integration_id, prefix="m", devices=None):
    """Writes `count` subscribers with one device each and a topic subscription straight into the SQLite database
    (benchmark set-up only; the API path is exercised by the tests). `devices` is a list of (provider, integration
    id, token function of the member index) used in turn; by default one push-webhook device per member."""
    if devices is None:
        devices = [("push-webhook", integration_id, lambda i: f"tok-{prefix}{i:08d}")]
    import sqlite3
    connection = sqlite3.connect(database_path)
    cursor = connection.cursor()
    environment = cursor.execute("SELECT id FROM environments WHERE name = 'development'").fetchone()[0]
    now = int(time.time() * 1000)
    cursor.execute("INSERT OR IGNORE INTO topics (id, environment_id, key, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                   (os.urandom(12).hex(), environment, topic, topic, now, now))
    batch = 10000
    for start in range(0, count, batch):
        rows = range(start, min(start + batch, count))
        cursor.executemany(
            "INSERT INTO subscribers (id, environment_id, subscriber_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            [(os.urandom(12).hex(), environment, f"{prefix}{i:08d}", now, now) for i in rows])
        cursor.executemany(
            "INSERT INTO devices (id, environment_id, provider, token, integration_id, subscriber_id, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(os.urandom(12).hex(), environment, devices[i % len(devices)][0], devices[i % len(devices)][2](i),
              devices[i % len(devices)][1], f"{prefix}{i:08d}", now, now) for i in rows])
        cursor.executemany(
            "INSERT INTO topic_subscriptions (id, environment_id, topic_key, subscriber_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(os.urandom(12).hex(), environment, topic, f"{prefix}{i:08d}", now, now) for i in rows])
        connection.commit()
    connection.close()


def postgres_database(admin_url):
    """Creates a fresh database on the PostgreSQL server of `admin_url` (psql) and returns its URL."""
    name = "herald_script_" + os.urandom(6).hex()
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {name}"], check=True, stdout=subprocess.DEVNULL)
    base, _, query = admin_url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


def postgres_seed_topic(database_url, topic, count, integration_id, prefix="m", devices=None):
    """The PostgreSQL twin of `sqlite_seed_topic`, in set-based statements. `devices` is a list of (provider,
    integration id, token SQL expression over the member index `g`) used in turn; by default one push-webhook device
    per member."""
    url = database_url.split("?")[0]
    if devices is None:
        devices = [("push-webhook", integration_id, f"'tok-{prefix}' || lpad(g::text, 8, '0')")]
    n = len(devices)

    def pick(values):
        return "CASE " + " ".join(f"WHEN g % {n} = {i} THEN {v}" for i, v in enumerate(values)) + " END"
    provider = pick([f"'{d[0]}'" for d in devices])
    integration = pick([f"'{d[1]}'" for d in devices])
    token = pick([d[2] for d in devices])
    sql = f"""
    BEGIN;
    CREATE TEMP TABLE env AS SELECT id FROM environments WHERE name = 'development';
    INSERT INTO topics (id, environment_id, key, name, created_at, updated_at)
      SELECT substr(md5(random()::text), 1, 24), id, '{topic}', '{topic}', 0, 0 FROM env ON CONFLICT DO NOTHING;
    INSERT INTO subscribers (id, environment_id, subscriber_id, created_at, updated_at)
      SELECT substr(md5(random()::text || g), 1, 24), env.id, '{prefix}' || lpad(g::text, 8, '0'), 0, 0
      FROM env, generate_series(0, {count - 1}) g;
    INSERT INTO devices (id, environment_id, provider, token, integration_id, subscriber_id, created_at, updated_at)
      SELECT substr(md5(random()::text || g), 1, 24), env.id, {provider}, {token},
             {integration}, '{prefix}' || lpad(g::text, 8, '0'), 0, 0
      FROM env, generate_series(0, {count - 1}) g;
    INSERT INTO topic_subscriptions (id, environment_id, topic_key, subscriber_id, created_at, updated_at)
      SELECT substr(md5(random()::text || g), 1, 24), env.id, '{topic}', '{prefix}' || lpad(g::text, 8, '0'), 0, 0
      FROM env, generate_series(0, {count - 1}) g;
    COMMIT;
    """
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, stdout=subprocess.DEVNULL)
    # As after any bulk load: without statistics the planner takes `environment_id = $1` for selective and walks the
    # environment's whole (environment_id, id) index for each batch lookup, until autovacuum analyzes the tables
    # (up to a minute later; docs/operations.md).
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", "ANALYZE subscribers, devices, topic_subscriptions, topics"],
                   check=True, stdout=subprocess.DEVNULL)


def sqlite_seed_preferences(database_path, subscriber_ids, channels, workflow_id=""):
    """Stores one preference layer (global when `workflow_id` is empty) with `channels` for each subscriber (benchmark
    set-up only; the preference API is exercised by the tests)."""
    import sqlite3
    connection = sqlite3.connect(database_path)
    environment = connection.execute("SELECT id FROM environments WHERE name = 'development'").fetchone()[0]
    now = int(time.time() * 1000)
    connection.executemany(
        "INSERT INTO subscriber_preferences (environment_id, subscriber_id, workflow_id, enabled, channels, updated_at) "
        "VALUES (?, ?, ?, NULL, ?, ?)", [(environment, sid, workflow_id, json.dumps(channels), now) for sid in subscriber_ids])
    connection.commit()
    connection.close()


def postgres_seed_preferences(database_url, subscriber_ids, channels, workflow_id=""):
    """The PostgreSQL twin of `sqlite_seed_preferences` (COPY from stdin)."""
    url = database_url.split("?")[0]
    environment = subprocess.run(["psql", url, "-tAc", "SELECT id FROM environments WHERE name = 'development'"],
                                 check=True, capture_output=True, text=True).stdout.strip()
    now = int(time.time() * 1000)
    rows = "".join(f"{environment}\t{sid}\t{workflow_id}\t{json.dumps(channels)}\t{now}\n" for sid in subscriber_ids)
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    "COPY subscriber_preferences (environment_id, subscriber_id, workflow_id, channels, updated_at) FROM STDIN"],
                   input=rows, text=True, check=True, stdout=subprocess.DEVNULL)


def metric_sum(server_url, name, exclude_labels=(), include=None):
    """The sum of a counter family's samples in `GET /metrics`, leaving out samples whose labels contain any of
    `exclude_labels` (e.g. 'outcome="delivered"'), and keeping only those containing `include` when given."""
    with urllib.request.urlopen(server_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if any(label in line for label in exclude_labels) or (include is not None and include not in line):
                continue
            total += float(line.rsplit(" ", 1)[1])
    return total
