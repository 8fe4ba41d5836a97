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

Part 1 is here; parts 2 and 3 are in redis_replicas.py, the pieces they share (the Redis server
as a child process, a keep-alive client, push bodies) in redis_common.py.

`--dry-run` starts the two redis tiers and the replicas without the `online` settings (for a
binary that has no redis tier yet): everything runs, the figures are the local tier's.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (the workloads, wrk driver and server wrapper are shared)
import s3  # noqa: E402  (the demo writer is shared)
from redis_common import (FEATURE, Redis, harness_request_json, profile_push,  # noqa: E402
                          redis_env, stamp, values_of)
from redis_replicas import replicas_runs  # noqa: E402

WORKLOADS = ["online_1", "online_100", "service_1"]
TIERS = ["local", "redis_empty", "redis_pushed"]


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
