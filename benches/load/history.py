#!/usr/bin/env python3
"""Table history (issue 16), behind `benches/load/history.sh` (run that; it builds first).

Against a release server on the demo data (the 300 000-row `user_profile`), over loopback:

  1. push cost: PUSHES sequential offline pushes of one row, history on (the defaults) and
     off (`[storage.history] keep_days = 0, keep_min = 1`), background folds held off so each
     push is measured alone, then once more with the default fold: latency p50/p99 and the
     bytes the server process wrote per push (`/proc/PID/io` write_bytes: parts, logs,
     sidecars, and the folds when they run);
  2. pinned reads: `POST /get-historical-features` of ENTITY_ROWS entity rows of
     `user_profile` as Parquet, unpinned (the current version) against pinned to the version
     before the pushes (after a fold, a prefix of the new file) and pinned to a version a
     replace superseded (the kept file); median and p90 of READS requests each;
  3. history size after the soak's write mix (`benches/load/soak.py`: as many offline pushes
     of one `user_profile` row as replaces of a 100-row scratch table): MIX_WRITES writes,
     then the bytes only history holds (files under `_history/` and `_appends/` that no
     current table reads, counted once per inode) against the tables' own size, before and
     after the sweep a restart runs.

Prints a table and writes target/load/history-latest.json.
"""

import argparse
import datetime
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

AS_OF = "2026-11-01T00:00:00Z"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """`featurestore serve` on `data` with `env` added; stopped by `stop`."""

    def __init__(self, binary, data, env):
        self.port = free_port()
        full = dict(os.environ, RUST_LOG="warn", **env)
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", data, "--port", str(self.port)], env=full)
        for _ in range(300):
            try:
                if self.call("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not come up")

    def call(self, method, path, body=None, accept="application/json"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"content-type": "application/json", "accept": accept}
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def ok(self, method, path, body=None, accept="application/json"):
        status, data = self.call(method, path, body, accept)
        if status >= 300:
            raise RuntimeError(f"{method} {path} answered {status}: {data[:300]!r}")
        return data

    def write_bytes(self):
        with open(f"/proc/{self.proc.pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
        return 0

    def version(self, path="/features/user/user_profile?limit=1"):
        return json.loads(self.ok("GET", path))["metadata"]["version"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def copy_tree(src, dst):
    """A copy of the demo's data root that keeps its hard links (every table file is also
    its own history name), so the copy's history costs what the original's does."""
    subprocess.run(["cp", "-a", f"{src}/.", dst], check=True)


def push_body(i):
    return {"push_source_name": "user_profile_push", "to": "offline", "df": {
        "user_id": [1 + i % 1000], "age": [30 + i % 40], "avg_rating": [4.5],
        "total_movies_watched": [10], "favorite_genre": ["Drama"],
        "account_created_days": [400], "event_timestamp": [AS_OF]}}


def pushes(server, n):
    """n sequential offline pushes on one keep-alive connection: latencies (ms), and the
    server's write_bytes before the first."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    before = server.write_bytes()
    lat = []
    reconnects = 0
    for i in range(n):
        body = json.dumps(push_body(i))
        t = time.perf_counter()
        try:
            conn.request("POST", "/push", body, {"content-type": "application/json"})
            r = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            # The server closed the idle keep-alive connection as the request went out: the
            # push was not read; send it again on a new connection.
            reconnects += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", server.port)
            conn.request("POST", "/push", body, {"content-type": "application/json"})
            r = conn.getresponse()
        r.read()
        lat.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, r.status
    conn.close()
    if reconnects:
        print(f"({reconnects} pushes resent on a new connection)", flush=True)
    return sorted(lat), before


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def push_cost(binary, demo, n, env, label):
    data = tempfile.mkdtemp()
    copy_tree(demo, data)
    try:
        server = Server(binary, data, env)
        try:
            lat, before = pushes(server, n)
            # The last background fold (when folds run) counts too.
            time.sleep(3)
            written = server.write_bytes() - before
        finally:
            server.stop()
        return {"config": label, "pushes": n, "p50_ms": statistics.median(lat),
                "p99_ms": quantile(lat, 0.99), "bytes_per_push": written / n}
    finally:
        shutil.rmtree(data, ignore_errors=True)


def timed_reads(server, body, reads):
    out = []
    for _ in range(reads):
        t = time.perf_counter()
        server.ok("POST", "/get-historical-features", body, "application/vnd.apache.parquet")
        out.append((time.perf_counter() - t) * 1000)
    return out


def pinned_reads(binary, demo, entity_rows, reads):
    data = tempfile.mkdtemp()
    copy_tree(demo, data)
    try:
        server = Server(binary, data, {"FEATURESTORE__STORAGE__FOLD_DELAY_MS": "60000"})
        try:
            v_demo = server.version()
            for i in range(16):
                server.ok("POST", "/push", push_body(i))
            server.ok("POST", "/features/user/user_profile/compact")
            v_folded = server.version()
            entities = {"user_id": [1 + (i * 7919) % 100000 for i in range(entity_rows)],
                        "event_timestamp": [AS_OF] * entity_rows}
            features = ["user_profile:age", "user_profile:avg_rating",
                        "user_profile:favorite_genre"]
            current = {"features": features, "entities": entities}
            prefix = dict(current, table_versions={"user_profile": v_demo})
            for body in (current, prefix):  # warm the page cache and the pinned handle
                timed_reads(server, body, 2)
            res = {"v_demo": v_demo, "v_current_after_fold": v_folded}
            order = [("current", current), ("pinned_prefix_of_folded_file", prefix)]
            samples = {name: [] for name, _ in order}
            for _ in range(reads):  # interleaved, so the machine's load hits both alike
                for name, body in order:
                    samples[name] += timed_reads(server, body, 1)
            # A replace: the superseded version is read from its kept file.
            page = json.loads(server.ok("GET", "/features/user/user_profile?limit=10000"))
            records = page["data"]
            v_before_replace = server.version()
            server.ok("POST", "/features/user/user_profile",
                      {"records": records, "entity_key": ["user_id"]})
            kept = dict(current, table_versions={"user_profile": v_before_replace})
            timed_reads(server, kept, 2)
            samples["pinned_replaced_version (300k rows, kept file)"] = timed_reads(
                server, kept, reads)
            for name, values in samples.items():
                res[name] = {"median_ms": statistics.median(values),
                             "p90_ms": quantile(values, 0.9)}
            return res
        finally:
            server.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)


def tree_bytes(root):
    """Bytes per table: its current file (`table`), and every other file under its
    `_history/` (`history`) or `_appends/` (`appends`, parts not in the current snapshot
    included), each inode once; and the version logs."""
    out = {}
    seen = set()
    features = os.path.join(root, "features")
    for group in os.listdir(features):
        gdir = os.path.join(features, group)
        for name in os.listdir(gdir):
            path = os.path.join(gdir, name)
            if name.endswith(".parquet") and os.path.isfile(path):
                st = os.stat(path)
                seen.add(st.st_ino)
                entry = out.setdefault(name[:-len(".parquet")], {"table": 0, "history": 0, "appends": 0})
                entry["table"] += st.st_size
    for dirpath, _, files in os.walk(features):
        parts = dirpath[len(features):].strip("/").split("/")
        if len(parts) < 3 or parts[1] not in ("_history", "_appends"):
            continue
        entry = out.setdefault(parts[2], {"table": 0, "history": 0, "appends": 0})
        for f in files:
            st = os.stat(os.path.join(dirpath, f))
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            entry["history" if parts[1] == "_history" else "appends"] += st.st_size
    logs = 0
    for dirpath, _, files in os.walk(os.path.join(root, "metadata")):
        logs += sum(os.path.getsize(os.path.join(dirpath, f))
                    for f in files if f.endswith(".history.jsonl"))
    total = {k: sum(t[k] for t in out.values()) for k in ("table", "history", "appends")}
    return {"tables": out, "total": total, "logs": logs}


def write_mix(binary, demo, writes):
    data = tempfile.mkdtemp()
    copy_tree(demo, data)
    try:
        server = Server(binary, data, {})
        scratch = [{"user_id": i, "segment": f"s{i % 7}", "event_timestamp": AS_OF}
                   for i in range(100)]
        t = time.perf_counter()
        try:
            for i in range(writes):
                if i % 2 == 0:
                    server.ok("POST", "/push", push_body(i))
                else:
                    scratch[i % 100]["segment"] = f"w{i}"
                    server.ok("POST", "/features/misc/soak_scratch",
                              {"records": scratch, "entity_key": ["user_id"]})
            time.sleep(3)  # the last background fold
        finally:
            server.stop()
        seconds = time.perf_counter() - t
        before = tree_bytes(data)
        server = Server(binary, data, {})  # the start-up sweep
        server.stop()
        after = tree_bytes(data)
        return {"writes": writes, "seconds": seconds, "before_sweep": before,
                "after_sweep": after}
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/featurestore")
    parser.add_argument("--pushes", type=int, default=500)
    parser.add_argument("--entity-rows", type=int, default=10000)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--mix-writes", type=int, default=1000)
    parser.add_argument("--only", default="pushes,reads,mix",
                        help="comma-separated parts to run: pushes, reads, mix")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    demo = tempfile.mkdtemp()
    try:
        subprocess.run([args.binary, "demo", "--data-dir", demo, "--as-of", AS_OF],
                       check=True, stdout=subprocess.DEVNULL)
        held = {"FEATURESTORE__STORAGE__FOLD_DELAY_MS": "60000",
                "FEATURESTORE__STORAGE__COMPACT_AFTER_PARTS": "100000"}
        off = {"FEATURESTORE__STORAGE__HISTORY__KEEP_DAYS": "0",
               "FEATURESTORE__STORAGE__HISTORY__KEEP_MIN": "1"}
        results = {"machine": os.uname().nodename, "cpus": os.cpu_count(),
                   "when": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        push_rows = []
        for _ in range(2 if "pushes" in parts else 0):  # interleaved twice: the machine is shared
            push_rows.append(push_cost(args.binary, demo, args.pushes, held, "history on, folds held"))
            push_rows.append(push_cost(args.binary, demo, args.pushes, dict(held, **off), "history off, folds held"))
        if "pushes" in parts:
            push_rows.append(push_cost(args.binary, demo, args.pushes, {}, "history on, default folds"))
            push_rows.append(push_cost(args.binary, demo, args.pushes, off, "history off, default folds"))
        results["pushes"] = push_rows
        for row in push_rows:
            print(f"{row['config']:<28} p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
                  f"{row['bytes_per_push']:.0f} B written per push", flush=True)
        if "reads" in parts:
            results["pinned_reads"] = pinned_reads(args.binary, demo, args.entity_rows, args.reads)
            print(json.dumps(results["pinned_reads"], indent=1), flush=True)
        if "mix" in parts:
            results["write_mix"] = write_mix(args.binary, demo, args.mix_writes)
            print(json.dumps(results["write_mix"], indent=1), flush=True)
        os.makedirs("target/load", exist_ok=True)
        with open("target/load/history-latest.json", "w") as f:
            json.dump(results, f, indent=1)
    finally:
        shutil.rmtree(demo, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
