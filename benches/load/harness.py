#!/usr/bin/env python3
"""The HTTP load harness behind `benches/load/run.sh` (run that; it builds and installs first).

It writes the demo data into a temporary data root, starts the release server on a free
loopback port, measures the size of the online answer for 1 entity x 5 features, restarts the
server with the hidden `--bench-floor-bytes` flag so `/_bench/floor` answers a fixed JSON body
of that size, warms every workload, then drives each workload with wrk for a fixed time at each
connection count, in rounds. Each round runs every workload once per connection count, so the
ratio to the floor is taken between runs seconds apart on the same machine state; the table
gives medians over the rounds.

Per run it records requests/s, p50 and p99 latency and errors (from wrk's Lua `done` hook),
the server's CPU time per request (utime + stime of the server process from /proc/<pid>/stat,
far steadier than requests/s on a shared machine) and the server's peak RSS during the run
(VmHWM after resetting it through /proc/<pid>/clear_refs). It prints one table and writes
everything, with the machine's description, to target/load/<UTC time>.json and
target/load/latest.json. Exits 1 when any request failed.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

FEATURES = [
    "user_profile:age",
    "user_profile:avg_rating",
    "user_profile:total_movies_watched",
    "user_profile:favorite_genre",
    "user_profile:account_created_days",
]


def user_ids(count):
    """Distinct ids spread over the demo's 100 000 users (deterministic)."""
    return [i * 997 % 100_000 + 1 for i in range(count)]


def workloads(as_of):
    """Every workload: name -> (method, path, JSON body or None, what it is)."""
    day = datetime.timedelta(days=1)
    times = [
        (as_of - day * (i % 20) / 4).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(1000)
    ]
    online_one = {"features": FEATURES, "entities": {"user_id": user_ids(1)}}
    return {
        "floor": ("POST", "/_bench/floor", online_one,
                  "fixed JSON of the online answer's size; same request body"),
        "health": ("GET", "/health", None, "GET /health"),
        "page_100": ("GET", "/features/user/user_profile?limit=100&offset=1000", None,
                     "100-row page of user_profile (cached)"),
        "projection_1000": (
            "GET",
            "/features/user/user_profile?columns=user_id,age,avg_rating&limit=1000&offset=2000",
            None, "1 000-row, 3-column projection (cached)"),
        "batch_10": ("POST", "/features/batch",
                     {"feature_names": ["user_profile"], "entity_ids": user_ids(10)},
                     "batch lookup of 10 ids in user_profile"),
        "online_1": ("POST", "/get-online-features", online_one,
                     "online, 1 entity x 5 features"),
        "online_100": ("POST", "/get-online-features",
                       {"features": FEATURES, "entities": {"user_id": user_ids(100)}},
                       "online, 100 entities x 5 features"),
        "service_1": ("POST", "/get-online-features",
                      {"feature_service": "movie_recommendation_service",
                       "entities": {"user_id": user_ids(1), "movie_id": [42]}},
                      "online, feature service (3 views), 1 entity"),
        "stats": ("GET", "/features/interaction/user_movie_interactions/stats", None,
                  "statistics of the 1 M-row interaction table (cached answer)"),
        "online_as_of": ("POST", "/get-online-features",
                         dict(online_one, as_of=(as_of - day).strftime("%Y-%m-%dT%H:%M:%SZ")),
                         "online as of a day ago, 1 entity x 5 features (warm history)"),
        "online_last_n": ("POST", "/get-online-features", dict(online_one, last_n=10),
                          "online last_n=10, 1 entity x 5 features (3 versions each; warm history)"),
        "historical_1000": ("POST", "/get-historical-features",
                            {"features": FEATURES,
                             "entities": {"user_id": user_ids(1000), "event_timestamp": times}},
                            "historical, 1 000 entity rows x 5 features (JSON)"),
    }


LUA = """wrk.method = {method}
wrk.headers["Content-Type"] = "application/json"
{body}
done = function(summary, latency, requests)
  local e = summary.errors
  local f = io.open({out}, "w")
  f:write(string.format(
    '{{"requests": %d, "duration_us": %d, "errors": %d, "non_2xx": %d, '
    .. '"p50_us": %d, "p99_us": %d, "max_us": %d, "bytes": %d}}',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    e.status, latency:percentile(50), latency:percentile(99), latency.max, summary.bytes))
  f:close()
end
"""


def lua_script(path, method, body, out):
    with open(path, "w") as f:
        f.write(LUA.format(
            method=json.dumps(method),
            body="wrk.body = " + json.dumps(json.dumps(body)) if body is not None else "",
            out=json.dumps(out)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(base, method, path, body, timeout=120):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return response.status, response.read()


class Server:
    """The release server as a child process on a free loopback port."""

    def __init__(self, binary, data_dir, extra=(), env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # `env` adds to this process's environment (benches/load/s3.py passes the s3 kind's).
        env = dict(os.environ, RUST_LOG="warn", **(env or {}))
        self.process = subprocess.Popen(
            [binary, "serve", "--data-dir", data_dir, "--port", str(self.port), *extra],
            env=env, stdout=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if request(self.base, "GET", "/health", None, timeout=1)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit("the server did not come up within 30 s")

    def cpu_ticks(self):
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)

    def status_kib(self, key):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def reset_peak_rss(self):
        """Resets VmHWM to the current RSS (Linux >= 4.0); False when not permitted."""
        try:
            with open(f"/proc/{self.process.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def warm(server, method, path, body):
    """Waits until the workload answers 200 (indexes built, caches filled)."""
    deadline = time.time() + 120
    while True:
        try:
            status, _ = request(server.base, method, path, body)
            if status == 200:
                # A second call fills the cache tiers a first read may only have started.
                request(server.base, method, path, body)
                return
        except OSError as error:
            if time.time() > deadline:
                raise SystemExit(f"{path} never answered 200: {error}")
        time.sleep(0.2)


def drive(server, work, name, path, conns, seconds, can_reset_peak):
    """One wrk run of workload `name` (its Lua script already in `work`, see `lua_script`)
    against `server`: wrk's figures plus requests/s, the server's CPU µs per request and its
    peak RSS during the run."""
    out = os.path.join(work, name + ".json")
    if os.path.exists(out):
        os.remove(out)
    server.reset_peak_rss()
    before = server.cpu_ticks()
    subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s",
         "-s", os.path.join(work, name + ".lua"), server.base + path],
        check=True, stdout=subprocess.DEVNULL)
    after = server.cpu_ticks()
    with open(out) as f:
        result = json.load(f)
    result.update(
        workload=name, connections=conns,
        rps=result["requests"] / (result["duration_us"] / 1e6),
        cpu_us_per_request=(after - before) / os.sysconf("SC_CLK_TCK")
        / max(result["requests"], 1) * 1e6,
        peak_rss_kib=server.status_kib("VmHWM" if can_reset_peak else "VmRSS"),
    )
    return result


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip() != ""
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "rustc": rustc,
        "commit": commit + ("+dirty" if dirty else ""),
        "load_average_before": os.getloadavg(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/featurestore")
    parser.add_argument("--seconds", type=int, default=4, help="per run (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="medians over rounds (default 3)")
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--only", help="comma-separated workloads (the floor always runs)")
    parser.add_argument("--out", default="target/load")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    started = time.time()
    host = machine()
    as_of = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) \
        - datetime.timedelta(hours=1)
    chosen = workloads(as_of)
    if args.only:
        keep = {"floor", *args.only.split(",")}
        unknown = keep - chosen.keys()
        if unknown:
            raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
        chosen = {k: v for k, v in chosen.items() if k in keep}

    work = tempfile.mkdtemp(prefix="featurestore-load-")
    data_dir = os.path.join(work, "data")
    server = None
    try:
        print(f"== demo data (as of {as_of.isoformat()}) into {data_dir}", flush=True)
        subprocess.run([args.binary, "demo", "--data-dir", data_dir, "--as-of",
                        as_of.strftime("%Y-%m-%dT%H:%M:%SZ")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The floor must answer as many bytes as the online lookup it is the floor of.
        probe = Server(args.binary, data_dir)
        method, path, body, _ = chosen["online_1"] if "online_1" in chosen \
            else workloads(as_of)["online_1"]
        warm(probe, method, path, body)
        floor_bytes = len(request(probe.base, method, path, body)[1])
        probe.stop()

        server = Server(args.binary, data_dir, ["--bench-floor-bytes", str(floor_bytes)])
        rss_idle_start = server.status_kib("VmRSS")
        for name, (method, path, body, _) in chosen.items():
            lua_script(os.path.join(work, name + ".lua"), method, body,
                       os.path.join(work, name + ".json"))
            warm(server, method, path, body)
        time.sleep(1)
        rss_idle_warm = server.status_kib("VmRSS")
        can_reset_peak = server.reset_peak_rss()
        print(f"== server pid {server.process.pid}: floor body {floor_bytes} B; idle RSS "
              f"{rss_idle_start / 1024:.0f} MiB after start, {rss_idle_warm / 1024:.0f} MiB "
              f"after warming every workload", flush=True)

        runs = []
        total = args.rounds * len(connections) * len(chosen)
        for round_index in range(args.rounds):
            for conns in connections:
                for name, (method, path, body, _) in chosen.items():
                    result = drive(server, work, name, path, conns, args.seconds,
                                   can_reset_peak)
                    result.update(round=round_index + 1)
                    runs.append(result)
                    print(f"   [{len(runs)}/{total}] round {round_index + 1}, {conns:>2} conns, "
                          f"{name}: {result['rps']:.0f} req/s, {result['errors']} errors",
                          flush=True)
        rss_after = server.status_kib("VmRSS")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = summarize(runs, chosen, connections)
    print_table(rows)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": host,
        "settings": {"seconds": args.seconds, "rounds": args.rounds,
                     "connections": connections, "wrk_threads": 1,
                     "floor_body_bytes": floor_bytes},
        "memory": {"idle_rss_mib_after_start": round(rss_idle_start / 1024, 1),
                   "idle_rss_mib_after_warm_up": round(rss_idle_warm / 1024, 1),
                   "rss_mib_after_runs": round(rss_after / 1024, 1),
                   "peak_is_per_run": can_reset_peak},
        "summary": rows,
        "runs": runs,
        "harness_seconds": round(time.time() - started, 1),
    }
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"{stamp}.json", "latest.json"):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(report, f, indent=2)
    errors = sum(r["errors"] for r in runs)
    print(f"idle RSS: {report['memory']['idle_rss_mib_after_start']} MiB after start, "
          f"{report['memory']['idle_rss_mib_after_warm_up']} MiB warm; "
          f"{errors} errors in {len(runs)} runs; {report['harness_seconds']} s; "
          f"written to {os.path.join(args.out, stamp + '.json')}")
    return 1 if errors else 0


def summarize(runs, chosen, connections):
    """Medians over rounds per (workload, connections); the floor ratio pairs each run with
    the floor run of its own round and connection count."""
    floor = {(r["round"], r["connections"]): r["rps"] for r in runs if r["workload"] == "floor"}
    rows = []
    for name, (_, _, _, what) in chosen.items():
        for conns in connections:
            mine = [r for r in runs if r["workload"] == name and r["connections"] == conns]
            if not mine:
                continue
            rows.append({
                "workload": name,
                "what": what,
                "connections": conns,
                "rps": round(statistics.median(r["rps"] for r in mine), 1),
                "p50_ms": round(statistics.median(r["p50_us"] for r in mine) / 1000, 3),
                "p99_ms": round(statistics.median(r["p99_us"] for r in mine) / 1000, 3),
                "errors": sum(r["errors"] for r in mine),
                "cpu_us_per_request": round(
                    statistics.median(r["cpu_us_per_request"] for r in mine), 1),
                "floor_ratio": round(statistics.median(
                    r["rps"] / floor[(r["round"], conns)] for r in mine), 3),
                "peak_rss_mib": round(max(r["peak_rss_kib"] for r in mine) / 1024, 1),
                "rounds": len(mine),
            })
    return rows


def print_table(rows):
    header = (f"{'workload':<16} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'errors':>6} {'CPU us/req':>10} {'/ floor':>7} {'peak RSS MiB':>12}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['workload']:<16} {r['connections']:>5} {r['rps']:>9.0f} {r['p50_ms']:>8.3f} "
              f"{r['p99_ms']:>8.3f} {r['errors']:>6} {r['cpu_us_per_request']:>10.1f} "
              f"{r['floor_ratio']:>7.2f} {r['peak_rss_mib']:>12.1f}")


if __name__ == "__main__":
    sys.exit(main())
