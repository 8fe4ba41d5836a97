#!/usr/bin/env python3
"""The S3 run of the load harness, behind `benches/load/s3.sh` (run that; it builds and installs
first).

It starts SeaweedFS (`weed mini`) on free loopback ports with its Prometheus metrics on, writes
the same demo (same `--as-of`) into a local data root and into a bucket, and measures three
things:

1. Warm workloads, local kind against s3 kind in the same run: one local-kind and one s3-kind
   server, both warmed, then page_100, projection_1000, online_1 and historical_1000 from
   harness.py driven by wrk on each in turn (the order alternates by round), in rounds. Per
   workload and connection count: medians of server CPU µs per request, p50 and requests/s for
   each kind, and the median over rounds of the s3/local ratio of the runs of the same round.
2. Cold page: the s3-kind server restarted on a fresh, empty data root (no disk cache) for each
   of `--cold-starts` starts, and the first `GET /features/interaction/user_movie_interactions?
   offset=500000&limit=100` timed from the client. The bytes and requests it cost are read from
   SeaweedFS's own counters (`SeaweedFS_s3_bucket_traffic_sent_bytes_total`,
   `SeaweedFS_s3_request_total`) just before and just after the request, and set against the
   size of the table's objects in the bucket (listed through the filer). These servers poll the
   bucket only every 60 s so no poll lands inside the measured window.
3. Write on A, seen on B: two s3-kind servers on the bucket (default poll interval). `--streams`
   tables, each created on A and first seen on B; then each stream replaces its table on A
   (a save of a few rows that bumps the version), and one poller reads B's `GET /features`
   every 5 ms and notes when each (table, version) first shows. Delay = first seen on B - A's
   answer. After it shows, B's page of the table must hold the value just written. Between
   writes a stream waits a random 0..poll interval, so writes do not lock to B's poll phase.

Prints the tables and writes everything with the machine's description to
target/load/s3-<UTC time>.json and target/load/s3-latest.json. Exits 1 when any request failed
or B served a value other than the one written.
"""

import argparse
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (the workloads, wrk driver and server wrapper are shared)

WORKLOADS = ["page_100", "projection_1000", "online_1", "historical_1000"]
COLD_GROUP, COLD_TABLE = "interaction", "user_movie_interactions"
COLD_PATH = f"/features/{COLD_GROUP}/{COLD_TABLE}?offset=500000&limit=100"
ACCESS_KEY, SECRET_KEY = "featurestore-bench", "featurestore-bench-secret"
BUCKET = "featurestore-bench"


def free_ports(count):
    """`count` distinct free loopback ports (held together while choosing)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port_pair():
    """A free port p with p + 10000 free too: weed's maintenance worker dials the admin gRPC
    at admin port + 10000 whatever -admin.port.grpc says (see tests/it/common/s3.rs)."""
    for _ in range(50):
        port = free_ports(1)[0]
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
                return port, port + 10000
            except OSError:
                continue
    raise SystemExit("no free pair of ports 10000 apart")


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class Weed:
    """`weed mini` on free loopback ports, with one bucket and Prometheus metrics."""

    def __init__(self, weed, work):
        p = free_ports(9)
        admin, admin_grpc = free_port_pair()
        self.endpoint = f"http://127.0.0.1:{p[6]}"
        self.filer = f"http://127.0.0.1:{p[4]}"
        self.metrics_url = f"http://127.0.0.1:{p[8]}/metrics"
        store = os.path.join(work, "weed")
        os.makedirs(store)
        self.log_path = os.path.join(work, "weed.log")
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [weed, "mini", f"-dir={store}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             "-master.telemetry=false",
             f"-master.port={p[0]}", f"-master.port.grpc={p[1]}",
             f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
             f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
             f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}",
             f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
             f"-metricsPort={p[8]}", f"-bucket={BUCKET}", "-s3.port.iceberg=0", "-s3.port.lance=0",
             "-webdav=false"],
            env=dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.time() + 60
        while http_ok(self.endpoint) is None or http_ok(self.filer) is None \
                or http_ok(self.metrics_url) is None:
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                with open(self.log_path) as f:
                    tail = f.read().splitlines()[-15:]
                raise SystemExit("weed mini did not come up:\n" + "\n".join(tail))
            time.sleep(0.1)
        # -bucket creates it once the filer is up; it is a folder under /buckets of the filer.
        while http_ok(f"{self.filer}/buckets/{BUCKET}/") != 200:
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                raise SystemExit(f"weed mini did not create the bucket {BUCKET}")
            time.sleep(0.1)

    def env(self, poll_interval_ms=None):
        """The environment of an s3-kind featurestore process on the bucket."""
        env = {
            "FEATURESTORE__STORAGE__BACKEND": "s3",
            "FEATURESTORE__STORAGE__S3__BUCKET": BUCKET,
            "FEATURESTORE__STORAGE__S3__ENDPOINT": self.endpoint,
            "FEATURESTORE__STORAGE__S3__ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }
        if poll_interval_ms is not None:
            env["FEATURESTORE__STORAGE__POLL_INTERVAL_MS"] = str(poll_interval_ms)
        return env

    def counters(self):
        """SeaweedFS's own S3 counters for the bucket: bytes sent and received, requests by
        type (GET, PUT, LIST, HEAD, ...)."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as r:
            text = r.read().decode()
        out = {"sent_bytes": 0.0, "received_bytes": 0.0, "requests": {}}
        for line in text.splitlines():
            m = re.match(r'(\w+)\{([^}]*)\} (\S+)$', line)
            if not m:
                continue
            name, labels, value = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"',
                                                               m.group(2))), float(m.group(3))
            if labels.get("bucket") != BUCKET:
                continue
            if name == "SeaweedFS_s3_bucket_traffic_sent_bytes_total":
                out["sent_bytes"] += value
            elif name == "SeaweedFS_s3_bucket_traffic_received_bytes_total":
                out["received_bytes"] += value
            elif name == "SeaweedFS_s3_request_total":
                kind = labels.get("type", "?")
                out["requests"][kind] = out["requests"].get(kind, 0) + value
        return out

    def objects(self, folder):
        """(key, size) of every object under `folder` of the bucket, through the filer."""
        found = []
        pending = [folder.strip("/")]
        while pending:
            path = pending.pop()
            request = urllib.request.Request(f"{self.filer}/buckets/{BUCKET}/{path}/?limit=10000",
                                             headers={"Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as r:
                listing = json.load(r)
            for entry in listing.get("Entries") or []:
                key = entry["FullPath"].split(f"/buckets/{BUCKET}/", 1)[1]
                if entry.get("Mode", 0) & 0o20000000000:  # os.ModeDir in Go
                    pending.append(key)
                else:
                    found.append((key, entry.get("FileSize", 0)))
        return found

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)  # weed mini may take long to honour SIGTERM
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def delta(before, after):
    requests = {k: int(after["requests"].get(k, 0) - before["requests"].get(k, 0))
                for k in set(after["requests"]) | set(before["requests"])}
    return {"sent_bytes": int(after["sent_bytes"] - before["sent_bytes"]),
            "requests": {k: v for k, v in sorted(requests.items()) if v}}


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def demo(binary, data_dir, as_of, env=None):
    started = time.time()
    subprocess.run([binary, "demo", "--data-dir", data_dir, "--as-of", as_of], check=True,
                   env=dict(os.environ, **(env or {})), stdout=subprocess.DEVNULL)
    return round(time.time() - started, 1)


def warm_runs(args, work, weed, as_of):
    """Part 1: the workloads on a local-kind and an s3-kind server, paired by round."""
    chosen = {k: v for k, v in harness.workloads(as_of).items() if k in WORKLOADS}
    connections = [int(c) for c in args.connections.split(",")]
    servers = {}
    try:
        servers["local"] = harness.Server(args.binary, os.path.join(work, "local"))
        servers["s3"] = harness.Server(args.binary,
                                       os.path.join(work, "s3-replica"),
                                       env=weed.env())
        for name, (method, path, body, _) in chosen.items():
            harness.lua_script(os.path.join(work, name + ".lua"), method, body,
                               os.path.join(work, name + ".json"))
            for server in servers.values():
                harness.warm(server, method, path, body)
        # Same answers from both kinds (but for the table's version number, which the two
        # stores count on their own), or the comparison means less: said in the report.
        different = []
        for name, (method, path, body, _) in chosen.items():
            answers = {}
            for kind, server in servers.items():
                answer = json.loads(harness.request(server.base, method, path, body)[1])
                if isinstance(answer, dict):
                    answer.get("metadata", {}).pop("version", None)
                answers[kind] = answer
            if answers["local"] != answers["s3"]:
                different.append(name)
                print(f"   NOTE: {name} answers differently on the s3 kind", flush=True)
        time.sleep(1)
        peak = {kind: s.reset_peak_rss() for kind, s in servers.items()}
        runs = []
        total = args.rounds * len(connections) * len(chosen) * 2
        for round_index in range(args.rounds):
            order = ["local", "s3"] if round_index % 2 == 0 else ["s3", "local"]
            for conns in connections:
                for name, (_, path, _, _) in chosen.items():
                    for kind in order:
                        result = harness.drive(servers[kind], work, name, path, conns,
                                               args.seconds, peak[kind])
                        result.update(round=round_index + 1, kind=kind)
                        runs.append(result)
                        print(f"   [{len(runs)}/{total}] round {round_index + 1}, {conns:>2} "
                              f"conns, {name} on {kind}: {result['rps']:.0f} req/s, "
                              f"{result['cpu_us_per_request']:.0f} us CPU/req, "
                              f"{result['errors']} errors", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    rows = []
    for name in chosen:
        for conns in connections:
            mine = [r for r in runs if r["workload"] == name and r["connections"] == conns]
            pairs = {}
            for r in mine:
                pairs.setdefault(r["round"], {})[r["kind"]] = r
            row = {"workload": name, "connections": conns,
                   "errors": sum(r["errors"] for r in mine)}
            for kind in ("local", "s3"):
                of = [r for r in mine if r["kind"] == kind]
                row[kind] = {
                    "rps": round(statistics.median(r["rps"] for r in of), 1),
                    "p50_ms": round(statistics.median(r["p50_us"] for r in of) / 1000, 3),
                    "p99_ms": round(statistics.median(r["p99_us"] for r in of) / 1000, 3),
                    "cpu_us_per_request": round(
                        statistics.median(r["cpu_us_per_request"] for r in of), 1),
                }
            row["cpu_ratio"] = round(statistics.median(
                p["s3"]["cpu_us_per_request"] / p["local"]["cpu_us_per_request"]
                for p in pairs.values()), 3)
            row["p50_ratio"] = round(statistics.median(
                p["s3"]["p50_us"] / p["local"]["p50_us"] for p in pairs.values()), 3)
            row["same_answer_as_local"] = name not in different
            rows.append(row)
    print(f"{'workload':<16} {'conns':>5} {'CPU us/req local':>16} {'s3':>8} {'ratio':>6} "
          f"{'p50 ms local':>12} {'s3':>8} {'ratio':>6} {'req/s local':>11} {'s3':>8} "
          f"{'errors':>6}")
    for r in rows:
        print(f"{r['workload']:<16} {r['connections']:>5} "
              f"{r['local']['cpu_us_per_request']:>16.1f} {r['s3']['cpu_us_per_request']:>8.1f} "
              f"{r['cpu_ratio']:>6.2f} {r['local']['p50_ms']:>12.3f} {r['s3']['p50_ms']:>8.3f} "
              f"{r['p50_ratio']:>6.2f} {r['local']['rps']:>11.0f} {r['s3']['rps']:>8.0f} "
              f"{r['errors']:>6}", flush=True)
    return rows, runs


def cold_pages(args, work, weed):
    """Part 2: the first 100-row page at offset 500 000 after a start on an empty data root."""
    objects = [(k, s) for k, s in weed.objects(f"tables/{COLD_TABLE}")]
    data_objects = [(k, s) for k, s in objects if k.endswith(".parquet")]
    table_bytes = sum(s for _, s in data_objects)
    starts = []
    for index in range(args.cold_starts):
        data_dir = os.path.join(work, f"cold-{index}")
        os.makedirs(data_dir)
        # Long poll: no poll of the bucket may fall inside the measured window.
        at_start = weed.counters()
        server = harness.Server(args.binary, data_dir, env=weed.env(poll_interval_ms=60_000))
        try:
            before = weed.counters()
            started = time.perf_counter()
            status, body = harness.request(server.base, "GET", COLD_PATH, None)
            first_ms = (time.perf_counter() - started) * 1000
            after = weed.counters()
            started = time.perf_counter()
            harness.request(server.base, "GET", COLD_PATH, None)
            second_ms = (time.perf_counter() - started) * 1000
        finally:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
        page = json.loads(body)
        rows = len(page.get("records") or page.get("data") or page.get("rows") or [])
        if status != 200 or page.get("metadata", {}).get("returned_rows", rows) != 100:
            raise SystemExit(f"cold page answered {status}: {body[:300]!r}")
        fetched = delta(before, after)
        starts.append({"first_ms": round(first_ms, 2), "second_ms": round(second_ms, 2),
                       "fetched": fetched, "start_up_fetched": delta(at_start, before)})
        print(f"   cold start {index + 1}/{args.cold_starts}: first page {first_ms:.1f} ms "
              f"(then {second_ms:.1f} ms), {fetched['sent_bytes']} B in "
              f"{fetched['requests']} from the store; start-up fetched "
              f"{starts[-1]['start_up_fetched']['sent_bytes']} B", flush=True)
    firsts = [s["first_ms"] for s in starts]
    sent = [s["fetched"]["sent_bytes"] for s in starts]
    summary = {
        "path": COLD_PATH,
        "method": f"{args.cold_starts} fresh starts, each on an empty data root; the first "
                  "request after /health answers",
        "first_ms_p50": round(statistics.median(firsts), 2),
        "first_ms_min": min(firsts), "first_ms_max": max(firsts),
        "second_ms_p50": round(statistics.median(s["second_ms"] for s in starts), 2),
        "fetched_bytes_p50": int(statistics.median(sent)),
        "start_up_fetched_bytes_p50": int(statistics.median(
            s["start_up_fetched"]["sent_bytes"] for s in starts)),
        "table_objects": data_objects,
        "table_object_bytes": table_bytes,
        "fetched_share_of_table": round(statistics.median(sent) / table_bytes, 4)
        if table_bytes else None,
        "starts": starts,
    }
    print(f"cold page: p50 {summary['first_ms_p50']} ms (min {summary['first_ms_min']}, max "
          f"{summary['first_ms_max']}) over {len(starts)} fresh starts; fetched p50 "
          f"{summary['fetched_bytes_p50']} B of the table's {table_bytes} B of objects "
          f"({summary['fetched_share_of_table']:.2%})", flush=True)
    return summary


def seen_delays(args, work, weed):
    """Part 3: the delay between a replace acknowledged by A and B serving its version."""
    a = harness.Server(args.binary, os.path.join(work, "replica-a"),
                       env=weed.env())
    b = None
    seen = {}  # (table, version) -> perf_counter time B first listed it
    seen_lock = threading.Condition()
    stop = threading.Event()
    errors = []

    def save(name, value):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        records = [{"user_id": i, "value": value, "event_timestamp": now} for i in range(1, 6)]
        status, body = harness.request(a.base, "POST", f"/features/bench/{name}",
                                       {"records": records, "entity_key": ["user_id"]})
        return json.loads(body)["version"]

    def poll():
        # Each table's page: what a model server reads, and it follows the background poll.
        while not stop.is_set():
            for name in names:
                try:
                    _, body = harness.request(b.base, "GET", f"/features/bench/{name}?limit=1",
                                              None, timeout=10)
                    now = time.perf_counter()
                    version = json.loads(body).get("metadata", {}).get("version")
                    if version is not None:
                        with seen_lock:
                            seen.setdefault((name, version), now)
                            seen_lock.notify_all()
                except OSError as error:
                    errors.append(f"B's page of {name}: {error}")
            time.sleep(0.005)

    delays, save_ms = [], []

    def stream(name, writes):
        for j in range(writes):
            started = time.perf_counter()
            try:
                version = save(name, j)
            except OSError as error:
                errors.append(f"save {name} #{j} on A: {error}")
                continue
            acked = time.perf_counter()
            save_ms.append((acked - started) * 1000)
            with seen_lock:
                ok = seen_lock.wait_for(
                    lambda: any(t == name and v >= version for t, v in seen), timeout=30)
                first = min((at for (t, v), at in seen.items() if t == name and v >= version),
                            default=None)
            if not ok or first is None:
                errors.append(f"{name} v{version} not seen on B within 30 s")
                continue
            delays.append((first - acked) * 1000)
            _, body = harness.request(b.base, "GET", f"/features/bench/{name}?limit=5", None)
            page = json.loads(body)
            values = {row.get("value") for row in page.get("records") or page.get("data") or []}
            if values != {j}:
                errors.append(f"{name} v{version}: B served values {values}, not {j}")
            time.sleep(random.uniform(0, 1.0))

    try:
        names = [f"seen_{k}" for k in range(args.streams)]
        for name in names:
            save(name, -1)
        b = harness.Server(args.binary, os.path.join(work, "replica-b"),
                           env=weed.env())
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        with seen_lock:
            if not seen_lock.wait_for(lambda: {t for t, _ in seen} >= set(names), timeout=30):
                raise SystemExit("B never listed the tables created on A")
        per_stream = [args.writes // args.streams + (k < args.writes % args.streams)
                      for k in range(args.streams)]
        threads = [threading.Thread(target=stream, args=(n, w)) for n, w in zip(names, per_stream)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        poller.join()
    finally:
        stop.set()
        a.stop()
        if b is not None:
            b.stop()
    summary = {
        "writes": args.writes, "streams": args.streams, "measured": len(delays),
        "poll_interval_ms": 1000, "b_listing_poll_ms": 5,
        "delay_ms_p50": round(statistics.median(delays), 1) if delays else None,
        "delay_ms_p99": round(percentile(delays, 99), 1) if delays else None,
        "delay_ms_max": round(max(delays), 1) if delays else None,
        "delay_ms_min": round(min(delays), 1) if delays else None,
        "save_on_a_ms_p50": round(statistics.median(save_ms), 1) if save_ms else None,
        "errors": errors,
    }
    print(f"write on A seen on B: p50 {summary['delay_ms_p50']} ms, p99 "
          f"{summary['delay_ms_p99']} ms, max {summary['delay_ms_max']} ms over "
          f"{len(delays)} writes ({args.streams} tables); save on A p50 "
          f"{summary['save_on_a_ms_p50']} ms; {len(errors)} errors", flush=True)
    for error in errors[:10]:
        print("   " + error)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/featurestore")
    parser.add_argument("--weed", default="target/test-servers/seaweedfs-4.48/bin/weed")
    parser.add_argument("--seconds", type=int, default=3, help="per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="medians over rounds (default 3)")
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--cold-starts", type=int, default=10)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--streams", type=int, default=4,
                        help="tables written at once in the A/B part (default 4)")
    parser.add_argument("--out", default="target/load")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    host = harness.machine()
    as_of = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) \
        - datetime.timedelta(hours=1)
    as_of_text = as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
    work = tempfile.mkdtemp(prefix="featurestore-s3-")
    weed = None
    try:
        weed = Weed(args.weed, work)
        print(f"== SeaweedFS at {weed.endpoint} (pid {weed.process.pid}), bucket {BUCKET}",
              flush=True)
        local_s = demo(args.binary, os.path.join(work, "local"), as_of_text)
        s3_s = demo(args.binary, os.path.join(work, "s3-demo"), as_of_text, weed.env())
        print(f"== demo (as of {as_of_text}): {local_s} s into a local data root, {s3_s} s "
              f"into the bucket", flush=True)
        warm_rows, runs = warm_runs(args, work, weed, as_of)
        cold = cold_pages(args, work, weed)
        seen = seen_delays(args, work, weed)
    finally:
        if weed is not None:
            weed.stop()
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": host,
        "settings": {"seconds": args.seconds, "rounds": args.rounds,
                     "connections": args.connections, "cold_starts": args.cold_starts,
                     "writes": args.writes, "streams": args.streams,
                     "seaweedfs": "weed mini 4.48 on loopback, same machine"},
        "demo_seconds": {"local": local_s, "s3": s3_s},
        "warm": warm_rows,
        "cold_page": cold,
        "write_on_a_seen_on_b": seen,
        "runs": runs,
        "harness_seconds": round(time.time() - started, 1),
    }
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"s3-{stamp}.json", "s3-latest.json"):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(report, f, indent=2)
    failed = sum(r["errors"] for r in warm_rows) + len(seen["errors"])
    print(f"{report['harness_seconds']} s; {failed} errors; written to "
          f"{os.path.join(args.out, 's3-' + stamp + '.json')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
