"""What the Redis run of the load harness (`benches/load/redis.py`) shares between its parts:
a Redis-compatible server as a child process, a keep-alive HTTP client, and push bodies."""

import datetime
import http.client
import json
import os
import socket
import subprocess
import time

import harness

# The value pushed in parts 2 and 3 is a user's `total_movies_watched`; the demo's are < 2 000.
FEATURE = "user_profile:total_movies_watched"


class Redis:
    """A Redis-compatible server on a loopback port, append-only, data in `folder`."""

    def __init__(self, binary, folder, port=None):
        self.binary, self.folder = binary, folder
        self.port = port or harness.free_port()
        os.makedirs(folder, exist_ok=True)
        self.process = None
        self.start()

    def start(self):
        log = open(os.path.join(self.folder, "server.log"), "a")
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "yes", "--dir", self.folder],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.time() + 30
        while True:
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{self.binary} did not come up on port {self.port}")
            time.sleep(0.05)

    def stop(self):
        """SIGTERM, as an orderly shutdown or a restart by an operator: it flushes its AOF."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args):
        """One command over a fresh connection (RESP by hand: no client library needed)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(f"*{len(args)}\r\n".encode() + b"".join(
                f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args))
            reply = s.makefile("rb")
            line = reply.readline().decode().rstrip("\r\n")
            kind, rest = line[:1], line[1:]
            if kind == "+":
                return rest
            if kind == ":":
                return int(rest)
            if kind == "$":
                size = int(rest)
                return None if size < 0 else reply.read(size + 2)[:-2].decode()
            raise OSError(f"Redis answered {line}")

    def info(self):
        """INFO all as a dict of its `key:value` lines."""
        out = {}
        for line in self.command("INFO", "all").splitlines():
            if ":" in line and not line.startswith("#"):
                key, value = line.split(":", 1)
                out[key] = value
        return out

    def counters(self):
        info = self.info()
        return {"ticks": proc_ticks(self.process.pid),
                "commands": int(info.get("total_commands_processed", 0)),
                "reads": int(info.get("total_reads_processed", 0))}

    def version(self):
        info = self.info()
        if "valkey_version" in info:
            return f"valkey {info['valkey_version']}"
        return f"redis {info.get('redis_version', '?')}"

def proc_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Client:
    """One keep-alive HTTP connection (the pollers must not pay a connect per request)."""

    def __init__(self, base, timeout=10):
        host, port = base.rsplit("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def post(self, path, body):
        payload = json.dumps(body)
        try:
            self.conn.request("POST", path, payload, {"content-type": "application/json"})
            response = self.conn.getresponse()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # reconnect once: the server may have closed an idle connection
            self.conn.request("POST", path, payload, {"content-type": "application/json"})
            response = self.conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None

    def close(self):
        self.conn.close()


def stamp(at=None):
    at = at or datetime.datetime.now(datetime.timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def profile_push(user_ids, values, to, at=None):
    """A push body of `user_profile` rows: one per user, `total_movies_watched` = value."""
    n = len(user_ids)
    when = stamp(at)
    return {"push_source_name": "user_profile_push", "to": to, "df": {
        "user_id": list(user_ids), "age": [40] * n, "avg_rating": [4.0] * n,
        "total_movies_watched": list(values), "favorite_genre": ["Drama"] * n,
        "account_created_days": [500] * n, "event_timestamp": [when] * n}}


def values_of(answer, feature_index=1):
    """(values, statuses) of the feature at `feature_index` of a Feast column-major answer
    (index 0 is the entity key)."""
    result = answer["results"][feature_index]
    return result["values"], result["statuses"]


def redis_env(redis, prefix, dry_run):
    if dry_run:
        return {}
    return {"FEATURESTORE__ONLINE__BACKEND": "redis",
            "FEATURESTORE__ONLINE__REDIS__URL": redis.url,
            "FEATURESTORE__ONLINE__REDIS__KEY_PREFIX": prefix}


def harness_request_json(base, path, body):
    client = Client(base)
    try:
        return client.post(path, body)
    finally:
        client.close()
