"""Parts 2 and 3 of the Redis run of the load harness (`benches/load/redis.py`, which says
what they measure): push on A seen on B, and pushes across a Redis restart, on two s3-kind
replicas sharing SeaweedFS and Redis."""

import http.client
import os
import statistics
import threading
import time

import harness
import s3
from redis_common import (FEATURE, Client, harness_request_json, profile_push, redis_env,
                          stamp, values_of)


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
