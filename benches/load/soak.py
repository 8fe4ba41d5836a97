#!/usr/bin/env python3
"""The soak test behind `benches/load/soak.sh` (run that; it builds and installs first).

Mixed reads and writes against one release server for a fixed time (default 300 s), over
loopback, with wrk rotating through a fixed mix of requests on every connection:

  reads (92 %): online lookups of 1 and 100 entities, the feature service, a cached page, a
                1 000-row projection, a batch lookup of 10 ids, /health;
  writes (8 %): pushes of one user_profile row online (4 %) and to the offline store (2 %,
                appended as a part file; every 16th folds the parts into the table), and a
                replace of a 100-row scratch table (2 %).

Every 5 s it samples the server's RSS, CPU time and open file descriptors. It passes when
no request failed (wrk counts connect/read/write errors, timeouts and statuses >= 400), the
server is still healthy, and RSS is flat: the peak of the last minute is at most 10 % (and
32 MiB) above the peak of the first minute after warm-up. The samples and the verdict go to
target/load/soak-<UTC time>.json and target/load/soak-latest.json. Exits 1 on failure.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FEATURES, Server, machine, request, user_ids, warm  # noqa: E402

SAMPLE_SECONDS = 5


def mix(as_of):
    """(weight, method, path, body) of every request in the rotation; weights sum to 50."""
    now = as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
    push_row = {
        "user_id": [7], "age": [35], "avg_rating": [4.5], "total_movies_watched": [121],
        "favorite_genre": ["Drama"], "account_created_days": [400], "event_timestamp": [now],
    }
    scratch = [{"user_id": i, "segment": f"s{i % 7}", "event_timestamp": now} for i in range(100)]
    return [
        (16, "POST", "/get-online-features",
         {"features": FEATURES, "entities": {"user_id": user_ids(1)}}),
        (4, "POST", "/get-online-features",
         {"features": FEATURES, "entities": {"user_id": user_ids(100)}}),
        (6, "POST", "/get-online-features",
         {"feature_service": "movie_recommendation_service",
          "entities": {"user_id": user_ids(1), "movie_id": [42]}}),
        (6, "GET", "/features/user/user_profile?limit=100&offset=1000", None),
        (4, "GET", "/features/user/user_profile?columns=user_id,age&limit=1000&offset=3000",
         None),
        (6, "POST", "/features/batch",
         {"feature_names": ["user_profile"], "entity_ids": user_ids(10)}),
        (4, "GET", "/health", None),
        (2, "POST", "/push", {"push_source_name": "user_profile_push", "to": "online",
                              "df": push_row}),
        (1, "POST", "/push", {"push_source_name": "user_profile_push", "to": "offline",
                              "df": push_row}),
        (1, "POST", "/features/misc/soak_scratch",
         {"records": scratch, "entity_key": ["user_id"]}),
    ]


def lua(entries, out):
    lines = ["local bodies = {}", "init = function(args)", "  local r = {}"]
    for weight, method, path, body in entries:
        headers = '{["Content-Type"] = "application/json"}' if body is not None else "{}"
        body_text = json.dumps(json.dumps(body)) if body is not None else "nil"
        lines.append(f"  local req = wrk.format({json.dumps(method)}, {json.dumps(path)}, "
                     f"{headers}, {body_text})")
        lines.append(f"  for _ = 1, {weight} do r[#r + 1] = req end")
    lines += [
        "  -- Spread writes through the rotation instead of bunching them.",
        "  local seed = 42",
        "  for i = #r, 2, -1 do",
        "    seed = (seed * 16807) % 2147483647",
        "    local j = seed % i + 1",
        "    r[i], r[j] = r[j], r[i]",
        "  end",
        "  bodies = r",
        "end",
        "local n = 0",
        "request = function()",
        "  n = n + 1",
        "  return bodies[(n % #bodies) + 1]",
        "end",
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        f"  local f = io.open({json.dumps(out)}, \"w\")",
        "  f:write(string.format('{\"requests\": %d, \"duration_us\": %d, \"errors\": %d, "
        "\"non_2xx\": %d, \"p50_us\": %d, \"p99_us\": %d, \"max_us\": %d}', summary.requests, "
        "summary.duration, e.connect + e.read + e.write + e.timeout + e.status, e.status, "
        "latency:percentile(50), latency:percentile(99), latency.max))",
        "  f:close()",
        "end",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default="target/release/featurestore")
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out", default="target/load")
    args = parser.parse_args()
    as_of = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) \
        - datetime.timedelta(minutes=10)
    entries = mix(as_of)
    host = machine()
    work = tempfile.mkdtemp(prefix="featurestore-soak-")
    data_dir = os.path.join(work, "data")
    server = None
    samples = []
    try:
        print(f"== demo data into {data_dir}", flush=True)
        subprocess.run([args.binary, "demo", "--data-dir", data_dir, "--as-of",
                        as_of.strftime("%Y-%m-%dT%H:%M:%SZ")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = Server(args.binary, data_dir)
        for _, method, path, body in entries:
            warm(server, method, path, body)
        script = os.path.join(work, "mix.lua")
        result_file = os.path.join(work, "result.json")
        with open(script, "w") as f:
            f.write(lua(entries, result_file))
        fd_dir = f"/proc/{server.process.pid}/fd"

        stop = threading.Event()
        started = time.time()

        def sample():
            while not stop.is_set():
                try:
                    stats = json.loads(request(server.base, "GET", "/cache/stats", None)[1])
                    cached = {tier: round(stats[tier]["bytes"] / 2**20, 1)
                              for tier in ("memory", "disk") if tier in stats}
                except (OSError, ValueError, KeyError, TypeError):
                    cached = None
                samples.append({
                    "t": round(time.time() - started, 1),
                    "cache_mib": cached,
                    "rss_mib": round(server.status_kib("VmRSS") / 1024, 1),
                    "cpu_ticks": server.cpu_ticks(),
                    "open_fds": len(os.listdir(fd_dir)),
                })
                stop.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        print(f"== {args.seconds} s of mixed load, {args.connections} connections", flush=True)
        subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s",
                        "--timeout", "10s", "-s", script, server.base + "/health"],
                       check=True, stdout=subprocess.DEVNULL)
        stop.set()
        sampler.join()
        with open(result_file) as f:
            result = json.load(f)
        healthy = request(server.base, "GET", "/health", None)[0] == 200
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    first = [s["rss_mib"] for s in samples if 10 <= s["t"] < 70]
    last = [s["rss_mib"] for s in samples if s["t"] >= samples[-1]["t"] - 60]
    first_peak, last_peak = max(first or [0]), max(last or [0])
    flat = last_peak <= max(first_peak * 1.10, first_peak + 32)
    seconds = result["duration_us"] / 1e6
    verdict = {
        "requests": result["requests"],
        "rps": round(result["requests"] / seconds, 1),
        "errors": result["errors"],
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "rss_peak_first_minute_mib": first_peak,
        "rss_peak_last_minute_mib": last_peak,
        "rss_flat": flat,
        "open_fds_first_last": [samples[0]["open_fds"], samples[-1]["open_fds"]],
        "healthy_after": healthy,
        "passed": result["errors"] == 0 and flat and healthy,
    }
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": host,
        "settings": {"seconds": args.seconds, "connections": args.connections,
                     "mix": [{"weight": w, "method": m, "path": p} for w, m, p, _ in entries]},
        "verdict": verdict,
        "samples": samples,
    }
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"soak-{stamp}.json", "soak-latest.json"):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(report, f, indent=2)
    for key, value in verdict.items():
        print(f"{key:>28}: {value}")
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
