#!/usr/bin/env python3
"""The Redis run of the load harness, behind `benches/load/redis.sh` (run that; it builds and
installs first).

It starts Redis (or Valkey) on a free loopback port with `--appendonly yes` and its data in a
temporary folder, and measures three things:

1. Online lookups on three tiers in the same run, each a release server on its own copy of the
   demo (same `--as-of`): `local` (the default online tier), `redis_empty` (`online.backend =
   "redis"`, nothing in Redis: every lookup is a probe of the local index) and `redis_pushed`
   (the redis tier after a few rows were pushed `to: online` into each of the demo's three
   views, so every lookup of those views makes its Redis round trip and merges by event
   time). online_1, online_100 and service_1 from harness.py, driven by wrk on each tier in
   turn (the order rotates by round), in rounds. Per run: the server's CPU per request and
   requests/s, and Redis's own CPU per request (utime + stime of the Redis process from
   /proc/<pid>/stat), commands per request and reads per request (`total_commands_processed`
   and `total_reads_processed` of `INFO stats`; a read is one batch a client sent, so reads
   per request is the round trips per request). Ratios to `local` pair runs of the same round.
2. Push on A, seen on B: SeaweedFS on loopback (s3.py's `Weed`), the demo in its bucket, two
   s3-kind replicas on the bucket and on the same Redis. `--pushes` pushes `to: online` on A,
   one at a time, each of a new value for one user; after A's answer, B is asked for that
   user's feature over one keep-alive connection, again and again, until it answers the new
   value. Delay = B's first answer with it - A's answer. Then the same with
   `to: online_and_offline`. Any answer of B other than the value before the push or the one
   pushed is a wrong answer. A's first push into `user_profile` comes before B starts, so B
   knows the view has rows in Redis (the steady state); how soon B serves the first push
   into a view it has not heard of (`movie_metadata`) is measured on its own, up to 5 s.
3. Pushes across a Redis restart: one client pushes `to: online` to A, one new user and value
   each, for `--before` seconds; Redis is stopped (SIGTERM: it flushes its append-only file)
   and started again on the same port and folder after `--outage` seconds; the client keeps
   pushing until `--after` seconds after Redis answers again. Every push answered 2xx
   (acknowledged) must then be served by A and by B with its value (else lost, or wrong when
   another value comes back); pushes answered 503 `online_store_unavailable` are counted, and
   the ones among them that were stored anyway are reported.

Prints the tables and writes everything with the machine's description to
target/load/redis-<UTC time>.json and target/load/redis-latest.json. Exits 1 when any request
failed unexpectedly, an acknowledged push was lost or any answer was wrong.

`--dry-run` starts the two redis tiers and the replicas without the `online` settings (for a
binary that has no redis tier yet): everything runs, the figures are the local tier's.
"""

import argparse
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (the workloads, wrk driver and server wrapper are shared)
import s3  # noqa: E402  (SeaweedFS on loopback and the percentile are shared)

WORKLOADS = ["online_1", "online_100", "service_1"]
TIERS = ["local", "redis_empty", "redis_pushed"]
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


def push_into_every_view(server):
    """Part 1's `redis_pushed` tier: rows pushed online into each demo view, newer than the
    tables' rows, for the entities the workloads look up (and a few others)."""
    users = harness.user_ids(100)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    bodies = [
        profile_push(users, [10_000 + i for i in range(100)], "online", now),
        {"push_source_name": "movie_metadata_push", "to": "online", "df": {
            "movie_id": [42, 43, 44], "title": ["Pushed 42", "Pushed 43", "Pushed 44"],
            "genre": ["Drama"] * 3, "secondary_genre": ["Comedy"] * 3,
            "release_year": [2020] * 3, "duration_minutes": [100] * 3,
            "avg_rating": [4.5] * 3, "rating_count": [123_456] * 3,
            "popularity_score": [99.5] * 3, "event_timestamp": [stamp(now)] * 3}},
        {"push_source_name": "user_movie_interactions_push", "to": "online", "df": {
            "user_id": users[:3], "movie_id": [42] * 3, "rating": [5] * 3,
            "watch_minutes": [171] * 3, "completed": [True] * 3,
            "interaction_type": ["watch"] * 3, "event_timestamp": [stamp(now)] * 3}},
    ]
    for body in bodies:
        status, answer = harness_request_json(server.base, "/push", body)
        if status // 100 != 2:
            raise SystemExit(f"push into {body['push_source_name']} answered {status}: {answer}")
    # The answer must now come from the pushed rows: 10 000 for the first user.
    status, answer = harness_request_json(server.base, "/get-online-features", {
        "features": [FEATURE], "entities": {"user_id": users[:1]}})
    if status != 200 or values_of(answer)[0] != [10_000]:
        raise SystemExit(f"the pushed row is not served: {status} {answer}")


def harness_request_json(base, path, body):
    client = Client(base)
    try:
        return client.post(path, body)
    finally:
        client.close()


def tier_runs(args, work, redis, as_of):
    """Part 1: online lookups on the local tier, the redis tier with nothing pushed, and the
    redis tier with pushed rows, paired by round."""
    chosen = {k: v for k, v in harness.workloads(as_of).items() if k in WORKLOADS}
    connections = [int(c) for c in args.connections.split(",")]
    as_of_text = as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
    envs = {"local": {} if args.dry_run else {"FEATURESTORE__ONLINE__BACKEND": "local"},
            "redis_empty": redis_env(redis, "bench-empty:", args.dry_run),
            "redis_pushed": redis_env(redis, "bench-pushed:", args.dry_run)}
    servers = {}
    try:
        for tier in TIERS:
            data_dir = os.path.join(work, tier)
            s3.demo(args.binary, data_dir, as_of_text)
            servers[tier] = harness.Server(args.binary, data_dir, env=envs[tier])
        push_into_every_view(servers["redis_pushed"])
        for name, (method, path, body, _) in chosen.items():
            harness.lua_script(os.path.join(work, name + ".lua"), method, body,
                               os.path.join(work, name + ".json"))
            for server in servers.values():
                harness.warm(server, method, path, body)
        # The empty redis tier must answer exactly as the local tier; the pushed one differs.
        same = {}
        for name, (method, path, body, _) in chosen.items():
            answers = {t: json.loads(harness.request(s.base, method, path, body)[1])
                       for t, s in servers.items()}
            same[name] = {"redis_empty": answers["redis_empty"] == answers["local"],
                          "redis_pushed": answers["redis_pushed"] == answers["local"]}
            if not same[name]["redis_empty"]:
                print(f"   NOTE: {name} answers differently on redis_empty", flush=True)
        time.sleep(1)
        peak = {tier: s.reset_peak_rss() for tier, s in servers.items()}
        runs = []
        total = args.rounds * len(connections) * len(chosen) * len(TIERS)
        for round_index in range(args.rounds):
            shift = round_index % len(TIERS)
            order = TIERS[shift:] + TIERS[:shift]
            for conns in connections:
                for name, (_, path, _, _) in chosen.items():
                    for tier in order:
                        before = redis.counters()
                        result = harness.drive(servers[tier], work, name, path, conns,
                                               args.seconds, peak[tier])
                        after = redis.counters()
                        n = max(result["requests"], 1)
                        result.update(
                            round=round_index + 1, tier=tier,
                            redis_cpu_us_per_request=(after["ticks"] - before["ticks"])
                            / os.sysconf("SC_CLK_TCK") / n * 1e6,
                            # INFO itself is one command and one read.
                            redis_commands_per_request=(after["commands"] - before["commands"]
                                                        - 1) / n,
                            redis_reads_per_request=(after["reads"] - before["reads"] - 1) / n)
                        runs.append(result)
                        print(f"   [{len(runs)}/{total}] round {round_index + 1}, {conns:>2} "
                              f"conns, {name} on {tier}: {result['rps']:.0f} req/s, "
                              f"{result['cpu_us_per_request']:.1f} us CPU/req, Redis "
                              f"{result['redis_cpu_us_per_request']:.1f} us/req, "
                              f"{result['redis_reads_per_request']:.2f} reads/req, "
                              f"{result['errors']} errors", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    rows = []
    for name in chosen:
        for conns in connections:
            mine = [r for r in runs if r["workload"] == name and r["connections"] == conns]
            rounds = {}
            for r in mine:
                rounds.setdefault(r["round"], {})[r["tier"]] = r
            row = {"workload": name, "connections": conns,
                   "errors": sum(r["errors"] for r in mine), "same_answer_as_local": same[name]}
            for tier in TIERS:
                of = [r for r in mine if r["tier"] == tier]
                row[tier] = {key: round(statistics.median(r[key] for r in of), 2) for key in (
                    "rps", "cpu_us_per_request", "redis_cpu_us_per_request",
                    "redis_commands_per_request", "redis_reads_per_request")}
                row[tier]["p50_ms"] = round(statistics.median(r["p50_us"] for r in of) / 1000, 3)
                row[tier]["p99_ms"] = round(statistics.median(r["p99_us"] for r in of) / 1000, 3)
            for tier in TIERS[1:]:
                row[f"{tier}_cpu_ratio"] = round(statistics.median(
                    p[tier]["cpu_us_per_request"] / p["local"]["cpu_us_per_request"]
                    for p in rounds.values()), 3)
            rows.append(row)
    print(f"{'workload':<11} {'conns':>5} | {'CPU us/req local':>16} {'empty':>6} {'ratio':>5} "
          f"{'pushed':>6} {'ratio':>5} | {'req/s local':>11} {'empty':>6} {'pushed':>6} | "
          f"{'Redis us/req':>12} {'reads/req':>9} | {'errors':>6}")
    for r in rows:
        print(f"{r['workload']:<11} {r['connections']:>5} | "
              f"{r['local']['cpu_us_per_request']:>16.1f} "
              f"{r['redis_empty']['cpu_us_per_request']:>6.1f} {r['redis_empty_cpu_ratio']:>5.2f} "
              f"{r['redis_pushed']['cpu_us_per_request']:>6.1f} "
              f"{r['redis_pushed_cpu_ratio']:>5.2f} | {r['local']['rps']:>11.0f} "
              f"{r['redis_empty']['rps']:>6.0f} {r['redis_pushed']['rps']:>6.0f} | "
              f"{r['redis_pushed']['redis_cpu_us_per_request']:>12.1f} "
              f"{r['redis_pushed']['redis_reads_per_request']:>9.2f} | {r['errors']:>6}",
              flush=True)
    return rows, runs


def seen_delays(a, b, to, count, base_value):
    """Part 2: `count` pushes `to` on A, each polled for on B until served."""
    users = harness.user_ids(count)
    on_a, on_b = Client(a.base), Client(b.base)
    delays, push_ms, polls, errors = [], [], [], []
    wrong = 0
    try:
        for j, user in enumerate(users):
            value = base_value + j
            lookup = {"features": [FEATURE], "entities": {"user_id": [user]}}
            status, answer = on_b.post("/get-online-features", lookup)
            previous = values_of(answer)[0][0] if status == 200 else None
            started = time.perf_counter()
            status, answer = on_a.post("/push", profile_push([user], [value], to))
            acked = time.perf_counter()
            if status // 100 != 2:
                errors.append(f"push #{j} to {to} on A answered {status}: {answer}")
                continue
            push_ms.append((acked - started) * 1000)
            tries = 0
            while True:
                status, answer = on_b.post("/get-online-features", lookup)
                tries += 1
                now = time.perf_counter()
                got = values_of(answer)[0][0] if status == 200 else None
                if got == value:
                    delays.append((now - acked) * 1000)
                    polls.append(tries)
                    break
                if status != 200 or got != previous:
                    wrong += 1
                    errors.append(f"push #{j}: B answered {status} {got!r}, neither the value "
                                  f"before ({previous!r}) nor the pushed one ({value})")
                    break
                if now - acked > 10:
                    errors.append(f"push #{j} ({to}) not seen on B within 10 s")
                    break
    finally:
        on_a.close()
        on_b.close()
    summary = {
        "to": to, "pushes": count, "measured": len(delays), "wrong_answers": wrong,
        "delay_ms_p50": round(statistics.median(delays), 3) if delays else None,
        "delay_ms_p99": round(s3.percentile(delays, 99), 3) if delays else None,
        "delay_ms_max": round(max(delays), 3) if delays else None,
        "polls_p50": statistics.median(polls) if polls else None,
        "polls_max": max(polls) if polls else None,
        "push_on_a_ms_p50": round(statistics.median(push_ms), 3) if push_ms else None,
        "push_on_a_ms_p99": round(s3.percentile(push_ms, 99), 3) if push_ms else None,
        "errors": errors,
    }
    print(f"push ({to}) on A, seen on B: p50 {summary['delay_ms_p50']} ms, p99 "
          f"{summary['delay_ms_p99']} ms, max {summary['delay_ms_max']} ms over {len(delays)} "
          f"pushes (B asked {summary['polls_p50']} times at the median, {summary['polls_max']} "
          f"at most); push on A p50 {summary['push_on_a_ms_p50']} ms; {wrong} wrong answers, "
          f"{len(errors)} errors", flush=True)
    for error in errors[:10]:
        print("   " + error)
    return summary


def first_push_of_a_view(a, b, limit_s=5.0):
    """A push into a view with no rows in Redis yet (`movie_metadata`), which B has not heard
    of: how long until B's lookups serve it (None when not within `limit_s`)."""
    movie, value = 4242, 777_777
    lookup = {"features": ["movie_metadata:rating_count"], "entities": {"movie_id": [movie]}}
    on_b = Client(b.base)
    try:
        status, answer = harness_request_json(a.base, "/push", {
            "push_source_name": "movie_metadata_push", "to": "online", "df": {
                "movie_id": [movie], "title": ["Pushed"], "genre": ["Drama"],
                "secondary_genre": ["Comedy"], "release_year": [2020],
                "duration_minutes": [100], "avg_rating": [4.5], "rating_count": [value],
                "popularity_score": [99.5], "event_timestamp": [stamp()]}})
        acked = time.perf_counter()
        if status // 100 != 2:
            raise SystemExit(f"the push into movie_metadata answered {status}: {answer}")
        tries = 0
        while time.perf_counter() - acked < limit_s:
            status, answer = on_b.post("/get-online-features", lookup)
            tries += 1
            if status == 200 and values_of(answer)[0] == [value]:
                delay = round((time.perf_counter() - acked) * 1000, 3)
                break
            time.sleep(0.001)
        else:
            delay = None
    finally:
        on_b.close()
    print(f"the first push into a view (movie_metadata) on A, seen on B: "
          + (f"after {delay} ms ({tries} lookups)" if delay is not None
             else f"not within {limit_s} s ({tries} lookups)"), flush=True)
    return {"view": "movie_metadata", "delay_ms": delay, "lookups": tries, "limit_s": limit_s}


def restart_pushes(args, a, b, redis):
    """Part 3: sequential pushes to A while Redis is stopped and started again."""
    outcomes = []  # (index, user, value, status, code, ms, started at)
    stop = threading.Event()
    client = Client(a.base, timeout=30)

    def push_loop():
        i = 0
        while not stop.is_set():
            user, value = 400_000 + i, 7_000_000 + i
            started = time.perf_counter()
            try:
                status, answer = client.post("/push", profile_push([user], [value], "online"))
                code = (answer or {}).get("code")
            except (OSError, http.client.HTTPException, ValueError) as error:
                status, code = None, f"client error: {error}"
            outcomes.append((i, user, value, status, code,
                             (time.perf_counter() - started) * 1000, started))
            i += 1

    reads = {"served": 0, "not_yet": 0, "wrong": 0, "failed": 0, "last_not_yet": None}

    def read_loop():
        # B under lookups all along, as behind a load balancer: the latest acknowledged push
        # must come back with its value, or (briefly, or while Redis is down) not yet.
        reader = Client(b.base)
        try:
            while not stop.is_set():
                done = [o for o in outcomes[-50:] if o[3] is not None and o[3] // 100 == 2]
                if not done:
                    time.sleep(0.001)
                    continue
                latest = done[-1]
                try:
                    status, answer = reader.post("/get-online-features", {
                        "features": [FEATURE], "entities": {"user_id": [latest[1]]}})
                except (OSError, http.client.HTTPException, ValueError):
                    reads["failed"] += 1
                    continue
                if status != 200:
                    reads["failed"] += 1
                    continue
                values, statuses = values_of(answer)
                if values[0] == latest[2]:
                    reads["served"] += 1
                elif statuses[0] == "NOT_FOUND":
                    reads["not_yet"] += 1
                    reads["last_not_yet"] = time.perf_counter()
                else:
                    reads["wrong"] += 1
        finally:
            reader.close()

    pusher = threading.Thread(target=push_loop, daemon=True)
    b_reader = threading.Thread(target=read_loop, daemon=True)
    t0 = time.perf_counter()
    pusher.start()
    b_reader.start()
    time.sleep(args.before)
    stopping = time.perf_counter()
    redis.stop()
    stopped = time.perf_counter()
    time.sleep(args.outage)
    redis.start()
    back = time.perf_counter()
    time.sleep(args.after)
    stop.set()
    pusher.join(timeout=60)
    b_reader.join(timeout=60)
    client.close()

    acked = [o for o in outcomes if o[3] is not None and o[3] // 100 == 2]
    unavailable = [o for o in outcomes if o[3] == 503 and o[4] == "online_store_unavailable"]
    counted = {o[0] for o in acked} | {o[0] for o in unavailable}
    other = [o for o in outcomes if o[0] not in counted]
    first_ok_after = next((o[6] for o in acked if o[6] >= back), None)

    def check(server, batch):
        """(lost, wrong, stored) for a batch of pushes: what `server` serves for their users."""
        status, answer = harness_request_json(server.base, "/get-online-features", {
            "features": [FEATURE], "entities": {"user_id": [o[1] for o in batch]}})
        if status != 200:
            raise SystemExit(f"lookup on {server.base} answered {status}: {answer}")
        values, statuses = values_of(answer)
        lost = [o for o, v, s in zip(batch, values, statuses) if s == "NOT_FOUND"]
        wrong = [o for o, v, s in zip(batch, values, statuses) if s != "NOT_FOUND" and v != o[2]]
        stored = [o for o, v in zip(batch, values) if v == o[2]]
        return lost, wrong, stored

    verdict = {}
    for name, server in (("a", a), ("b", b)):
        lost, wrong, stored_503 = [], [], []
        for k in range(0, len(acked), 100):
            got = check(server, acked[k:k + 100])
            lost += got[0]
            wrong += got[1]
        for k in range(0, len(unavailable), 100):
            stored_503 += check(server, unavailable[k:k + 100])[2]
        verdict[name] = {"lost": len(lost), "wrong": len(wrong),
                         "answered_503_but_stored": len(stored_503),
                         # (index, ms the push took, s after the stop began it started)
                         "answered_503_but_stored_examples": [
                             (o[0], round(o[5], 1), round(o[6] - stopping, 3))
                             for o in stored_503[:5]],
                         "lost_examples": [o[:4] for o in lost[:5]],
                         "wrong_examples": [o[:4] for o in wrong[:5]]}
    summary = {
        "pushes": len(outcomes), "acknowledged": len(acked),
        "online_store_unavailable_503": len(unavailable),
        "other_answers": len(other),
        "other_examples": [o[3:5] for o in other[:5]],
        "redis_stop_s": round(stopped - stopping, 3),
        "redis_down_s": round(back - stopped, 3),
        "pushing_s": round(time.perf_counter() - t0, 1),
        "first_ack_after_redis_back_ms": round((first_ok_after - back) * 1000, 1)
        if first_ok_after is not None else None,
        "push_ms_max": round(max(o[5] for o in outcomes), 1) if outcomes else None,
        "push_ms_p50": round(statistics.median(o[5] for o in outcomes), 3) if outcomes else None,
        "verdict": verdict,
        "b_reads_during": {k: v for k, v in reads.items() if k != "last_not_yet"},
        "b_last_not_yet_after_redis_back_ms": round((reads["last_not_yet"] - back) * 1000, 1)
        if reads["last_not_yet"] is not None else None,
    }
    print(f"Redis restart under pushes: {len(outcomes)} pushes, {len(acked)} acknowledged, "
          f"{len(unavailable)} answered 503 online_store_unavailable, {len(other)} other; "
          f"lost on A/B {verdict['a']['lost']}/{verdict['b']['lost']}, wrong on A/B "
          f"{verdict['a']['wrong']}/{verdict['b']['wrong']}, 503 but stored on A/B "
          f"{verdict['a']['answered_503_but_stored']}/{verdict['b']['answered_503_but_stored']}"
          f"; first ack {summary['first_ack_after_redis_back_ms']} ms after Redis answered "
          f"again; slowest push {summary['push_ms_max']} ms; B's lookups of the latest "
          f"acknowledged push meanwhile: {summary['b_reads_during']}, the last one not served "
          f"{summary['b_last_not_yet_after_redis_back_ms']} ms after Redis answered again",
          flush=True)
    return summary


def replicas_runs(args, work, redis, as_of):
    """Parts 2 and 3 on two s3-kind replicas sharing SeaweedFS and Redis."""
    weed = s3.Weed(args.weed, work)
    a = b = None
    try:
        print(f"== SeaweedFS at {weed.endpoint} (pid {weed.process.pid})", flush=True)
        s3.demo(args.binary, os.path.join(work, "s3-demo"), as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
                weed.env())
        env = dict(weed.env(), **redis_env(redis, "bench-ab:", args.dry_run))
        a = harness.Server(args.binary, os.path.join(work, "replica-a"), env=env)
        # One row in Redis before B starts, so B knows from its start that user_profile has
        # rows there: the figures are the steady state of a view in use, not how a replica
        # first hears of a view's first push.
        status, answer = harness_request_json(a.base, "/push", profile_push([9_000_001], [1],
                                                                            "online"))
        if status // 100 != 2:
            raise SystemExit(f"the first push on A answered {status}: {answer}")
        b = harness.Server(args.binary, os.path.join(work, "replica-b"), env=env)
        for server in (a, b):
            harness.warm(server, "POST", "/get-online-features",
                         {"features": [FEATURE], "entities": {"user_id": [1]}})
        first = first_push_of_a_view(a, b)
        seen = [seen_delays(a, b, "online", args.pushes, 1_000_000),
                seen_delays(a, b, "online_and_offline", args.pushes, 3_000_000)]
        restart = restart_pushes(args, a, b, redis)
    finally:
        for server in (a, b):
            if server is not None:
                server.stop()
        weed.stop()
    return {"first_push_of_a_view": first, "steady": seen}, restart


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/featurestore")
    parser.add_argument("--redis", required=True, help="redis-server or valkey-server binary")
    parser.add_argument("--weed", default="target/test-servers/seaweedfs-4.48/bin/weed")
    parser.add_argument("--seconds", type=int, default=3, help="per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="medians over rounds (default 3)")
    parser.add_argument("--connections", default="8")
    parser.add_argument("--pushes", type=int, default=1000,
                        help="pushes per kind in the seen-on-B part (default 1000)")
    parser.add_argument("--before", type=float, default=3.0,
                        help="seconds of pushes before Redis is stopped (default 3)")
    parser.add_argument("--outage", type=float, default=2.0,
                        help="seconds Redis stays down (default 2)")
    parser.add_argument("--after", type=float, default=5.0,
                        help="seconds of pushes after Redis answers again (default 5)")
    parser.add_argument("--skip-replicas", action="store_true",
                        help="part 1 only (no SeaweedFS, no replicas)")
    parser.add_argument("--dry-run", action="store_true",
                        help="the redis tiers without the online settings (a binary without them)")
    parser.add_argument("--out", default="target/load")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    host = harness.machine()
    as_of = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) \
        - datetime.timedelta(hours=1)
    work = tempfile.mkdtemp(prefix="featurestore-redis-")
    redis = None
    seen, restart = None, None
    loads = {}
    try:
        redis = Redis(args.redis, os.path.join(work, "redis"))
        version = redis.version()
        print(f"== {version} on port {redis.port} (pid {redis.process.pid}), append-only"
              + (" -- DRY RUN: the redis tiers run without the online settings"
                 if args.dry_run else ""), flush=True)
        loads = {"tiers_before": os.getloadavg()}
        tier_rows, runs = tier_runs(args, work, redis, as_of)
        loads["replicas_before"] = os.getloadavg()
        if not args.skip_replicas:
            seen, restart = replicas_runs(args, work, redis, as_of)
        loads["end"] = os.getloadavg()
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": dict(host, load_averages=loads),
        "settings": {"seconds": args.seconds, "rounds": args.rounds,
                     "connections": args.connections, "pushes": args.pushes,
                     "before_s": args.before, "outage_s": args.outage, "after_s": args.after,
                     "redis": f"{version} on loopback, same machine, --appendonly yes",
                     "dry_run": args.dry_run},
        "tiers": tier_rows,
        "push_on_a_seen_on_b": seen,
        "redis_restart": restart,
        "runs": runs,
        "harness_seconds": round(time.time() - started, 1),
    }
    os.makedirs(args.out, exist_ok=True)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"redis-{when}.json", "redis-latest.json"):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(report, f, indent=2)
    print("load averages (1, 5, 15 min): " + "; ".join(
        f"{k} {v[0]:.2f} {v[1]:.2f} {v[2]:.2f}" for k, v in loads.items()))
    failed = sum(r["errors"] for r in tier_rows) + sum(
        len(s["errors"]) for s in (seen or {}).get("steady", []))
    if restart is not None:
        failed += restart["other_answers"] + sum(
            v["lost"] + v["wrong"] for v in restart["verdict"].values())
    print(f"{report['harness_seconds']} s; load average {os.getloadavg()[0]:.2f}; {failed} "
          f"failures; written to {os.path.join(args.out, 'redis-' + when + '.json')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
