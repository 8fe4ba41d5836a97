"""Smoke test of the Python client generated from openapi/openapi.json by openapi-python-client.

Usage: python smoke.py BASE_URL [DATA_DIR]   (e.g. http://127.0.0.1:18555 /tmp/x/data)

The server must hold the `featurestore demo` tables (user/user_profile, content/movie_metadata,
interaction/user_movie_interactions). Every operation is called through the generated
functions and models (never raw HTTP), and every answer, including problem+json errors, must
parse into the generated model of its status. The client raises on any status the spec does
not document. The script creates and deletes its own tables in group `sdkcheck`. With
DATA_DIR (the server's --data-dir), it also breaks one of its own table files on disk and checks
that the resulting server errors are documented and parse into Problem.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import sys
from typing import Any

from featurestore_client import Client
# Operation ids follow method and path (`postFeaturesBatch` → `post_features_batch`); the
# short names below are this script's.
from featurestore_client.api.features import (
    delete_features_by_group_by_name as delete_table,
    get_features as list_tables,
    get_features_by_group_by_name as get_page,
    get_features_by_group_by_name_info as table_info,
    post_features_batch as batch,
    post_features_by_group_by_name as save_table,
)
from featurestore_client.api.health import get_health as health
from featurestore_client.api.registry import (
    get_registry_entities as entities,
    get_registry_feature_services_by_name as feature_service,
    get_registry_feature_views as feature_views,
    get_registry_feature_views_by_name as feature_view,
)
from featurestore_client.api.registry import post_registry_apply as apply_definitions
from featurestore_client.api.serving import post_get_online_features as get_online_features
from featurestore_client.models import (
    BatchRequest,
    BatchResponse,
    DeleteResponse,
    FeaturePageResponse,
    FieldError,
    EntityList,
    FeatureService,
    FeatureView,
    FeatureViewList,
    HealthResponse,
    Layout,
    OnlineFeaturesRequest,
    OnlineFeaturesRequestEntities,
    OnlineFeaturesResponse,
    OnlineRowsResponse,
    OnlineSeriesResponse,
    OnlineSeriesRowsResponse,
    RegistryDocument,
    PageMetadata,
    Problem,
    Record,
    SaveFeaturesRequest,
    SaveFeaturesResponse,
    StorageInfoResponse,
    TableListResponse,
    TableSummary,
)
from featurestore_client.types import UNSET, Response

GROUP = "sdkcheck"
SUFFIX = str(os.getpid())
USERS = f"sdk_users_{SUFFIX}"
ITEMS = f"sdk_items_{SUFFIX}"
CHECKS = 0
EXERCISED = {
    "get_health", "get_features", "get_features_by_group_by_name", "post_features_by_group_by_name",
    "get_features_by_group_by_name_info", "post_features_batch", "delete_features_by_group_by_name",
    "get_registry_entities", "get_registry_feature_views", "get_registry_feature_views_by_name",
    "get_registry_feature_services_by_name", "post_registry_apply", "post_get_online_features",
}


def check(condition: bool, what: str) -> None:
    global CHECKS
    CHECKS += 1
    if not condition:
        raise AssertionError(what)


def ok(response: Response[Any], status: int, model: type, what: str) -> Any:
    """The parsed body of a success, checked for status and model."""
    body = response.content[:300]
    check(response.status_code == status, f"{what}: status {response.status_code} != {status}: {body!r}")
    check(isinstance(response.parsed, model), f"{what}: parsed {type(response.parsed).__name__}, not {model.__name__}")
    return response.parsed


def problem(response: Response[Any], status: int, code: str, what: str) -> Problem:
    """A problem+json error, checked to be parsed into the generated Problem model."""
    check(response.status_code == status, f"{what}: status {response.status_code} != {status}: {response.content!r}")
    check(
        response.headers.get("content-type", "").startswith("application/problem+json"),
        f"{what}: content type {response.headers.get('content-type')}",
    )
    parsed = response.parsed
    check(isinstance(parsed, Problem), f"{what}: parsed {type(parsed).__name__}, not Problem")
    assert isinstance(parsed, Problem)
    check(parsed.status == status, f"{what}: problem.status {parsed.status}")
    check(parsed.code == code, f"{what}: problem.code {parsed.code!r} != {code!r}")
    check(parsed.type_ == "/problems/" + code.replace("_", "-"), f"{what}: problem.type {parsed.type_!r}")
    check(bool(parsed.title) and bool(parsed.detail), f"{what}: empty title or detail")
    if not isinstance(parsed.errors, type(UNSET)):
        check(all(isinstance(e, FieldError) for e in parsed.errors), f"{what}: errors not FieldError")
    return parsed


def records(rows: list[dict[str, Any]]) -> list[Record]:
    return [Record.from_dict(row) for row in rows]


def main(base_url: str, data_dir: str | None) -> None:
    client = Client(base_url=base_url, raise_on_unexpected_status=True, timeout=30.0)

    # --- health
    h = ok(health.sync_detailed(client=client), 200, HealthResponse, "health")
    check(h.status == "healthy", f"health.status {h.status}")
    check(h.data_root_writable is True, "health.data_root_writable")
    check(isinstance(h.uptime_seconds, float) and isinstance(h.table_count, int), "health types")
    check(h.table_count >= 3, f"health.table_count {h.table_count}")

    # --- list tables
    listing = ok(list_tables.sync_detailed(client=client), 200, TableListResponse, "list_tables")
    groups = listing.groups.additional_properties
    check({"user", "content", "interaction"} <= set(groups), f"groups {sorted(groups)}")
    profile = next(t for t in groups["user"] if t.name == "user_profile")
    check(isinstance(profile, TableSummary), "groups[user][*] is TableSummary")
    check(profile.rows > 0 and profile.columns == 7, f"user_profile summary {profile}")
    check(listing.table_count == sum(len(v) for v in groups.values()), "table_count")

    # --- get a page: columns, limit, offset
    page = ok(
        get_page.sync_detailed("user", "user_profile", client=client, columns="user_id,avg_rating", limit=3, offset=1),
        200,
        FeaturePageResponse,
        "get_page",
    )
    meta = page.metadata
    check(isinstance(meta, PageMetadata), "page.metadata is PageMetadata")
    check(page.feature_group == "user" and page.feature_name == "user_profile", "page names")
    check(meta.total_rows == profile.rows, f"total_rows {meta.total_rows} != {profile.rows}")
    check((meta.returned_rows, meta.offset, meta.limit) == (3, 1, 3), f"page counts {meta}")
    check(meta.next_offset == 4, f"next_offset {meta.next_offset!r}")
    check(meta.columns == ["user_id", "avg_rating"], f"columns {meta.columns}")
    check(meta.dtypes["user_id"] == "int64" and meta.dtypes["avg_rating"] == "float64", f"dtypes {meta.dtypes}")
    check(len(page.data) == 3, "page.data length")
    check(all(isinstance(row, Record) for row in page.data), "page.data items are Record")
    check(all(set(row.additional_keys) == {"user_id", "avg_rating"} for row in page.data), "page row keys")
    check(all(isinstance(row["user_id"], int) for row in page.data), "page user_id values are ints")

    last = ok(
        get_page.sync_detailed("user", "user_profile", client=client, limit=10, offset=meta.total_rows - 2),
        200,
        FeaturePageResponse,
        "get_page last",
    )
    check(last.metadata.returned_rows == 2, f"last page returned_rows {last.metadata.returned_rows}")
    check(last.metadata.next_offset is None, f"last page next_offset {last.metadata.next_offset!r}")
    empty = ok(get_page.sync_detailed("user", "user_profile", client=client, limit=0), 200, FeaturePageResponse, "limit=0")
    check(empty.data == [] and len(empty.metadata.columns) == 7, "limit=0 returns metadata only")

    # --- save (create, then replace)
    rows = [
        {"user_id": 1, "age": 34, "score": 4.5, "active": True, "event_timestamp": "2025-06-01T00:00:00Z"},
        {"user_id": 1, "age": 35, "score": 4.0, "active": False, "event_timestamp": "2025-09-01T00:00:00Z"},
        {"user_id": 2, "age": 27, "score": 3.1, "active": True, "event_timestamp": "2025-07-01T00:00:00Z"},
        {"user_id": 3, "age": 61, "score": None, "active": True, "event_timestamp": "2025-08-01T00:00:00Z"},
    ]
    request = SaveFeaturesRequest(records=records(rows), entity_key=["user_id"], timestamp_field="event_timestamp")
    created = ok(save_table.sync_detailed(GROUP, USERS, client=client, body=request), 201, SaveFeaturesResponse, "save")
    check(created.rows_saved == 4 and created.version >= 1, f"save {created}")
    check(created.entity_key == ["user_id"] and created.timestamp_field == "event_timestamp", f"save decl {created}")
    check(created.file_path == f"features/{GROUP}/{USERS}.parquet", f"file_path {created.file_path}")
    replaced = ok(save_table.sync_detailed(GROUP, USERS, client=client, body=request), 200, SaveFeaturesResponse, "replace")
    check(replaced.version > created.version, f"version {replaced.version} after {created.version}")

    item_rows = [{"item_id": "a", "price": 1.5}, {"item_id": "b", "price": 2.0}]
    items_request = SaveFeaturesRequest(records=records(item_rows), entity_key=["item_id"])
    saved_items = ok(save_table.sync_detailed(GROUP, ITEMS, client=client, body=items_request), 201, SaveFeaturesResponse, "save items")
    check(saved_items.timestamp_field is None, f"items timestamp_field {saved_items.timestamp_field!r}")

    # --- info
    info = ok(table_info.sync_detailed(GROUP, USERS, client=client), 200, StorageInfoResponse, "info").storage_info
    check(info.feature_group == GROUP and info.feature_name == USERS and info.exists, "info names")
    check(info.row_count == 4 and info.column_count == 5 == len(info.columns), f"info counts {info}")
    by_name = {c.name: c for c in info.columns}
    check(by_name["user_id"].logical_type == "int64", f"user_id logical {by_name['user_id']}")
    check(by_name["user_id"].stored_type == "int8", f"user_id stored_type {by_name['user_id'].stored_type}")
    check(by_name["score"].stored_type.startswith("float"), f"score stored_type {by_name['score'].stored_type}")
    check(all(isinstance(c.stored_type, str) and c.stored_type for c in info.columns), "stored_type strings")
    check(info.entity_key == ["user_id"] and info.timestamp_field == "event_timestamp", "info declaration")
    check(info.version == replaced.version and info.compression == "snappy", "info version/compression")

    # --- batch: ids mixing int and string, without and with timestamp
    body = BatchRequest(feature_names=[USERS, "user_profile", ITEMS], entity_ids=[1, "2", "a"])
    b = ok(batch.sync_detailed(client=client, body=body), 200, BatchResponse, "batch")
    features = b.features
    check(set(features.additional_keys) == {USERS, "user_profile", ITEMS}, f"batch tables {features.additional_keys}")
    users = features[USERS]
    check(all(isinstance(r, Record) for rows in features.additional_properties.values() for r in rows), "rows are Record")
    check(sorted(r["user_id"] for r in users) == [1, 1, 2], f"batch {USERS} ids {[r.to_dict() for r in users]}")
    check({r["user_id"] for r in features["user_profile"]} == {1, 2}, "batch user_profile ids")
    check([r["item_id"] for r in features[ITEMS]] == ["a"], f"batch items {[r.to_dict() for r in features[ITEMS]]}")
    check(b.metadata.feature_count == 3, f"feature_count {b.metadata.feature_count}")
    check(b.metadata.entity_key[USERS] == "user_id" and b.metadata.entity_key[ITEMS] == "item_id", "batch entity_key")
    check(b.timestamp is None, f"batch timestamp {b.timestamp!r}")
    check(bool(b.metadata.request_timestamp), "request_timestamp")

    as_of = BatchRequest(feature_names=[USERS], entity_ids=["1", 2, 3], timestamp="2025-08-15T02:00:00+02:00")
    b2 = ok(batch.sync_detailed(client=client, body=as_of), 200, BatchResponse, "batch as of")
    latest = {r["user_id"]: r.to_dict() for r in b2.features[USERS]}
    check(sorted(latest) == [1, 2, 3], f"as-of entities {sorted(latest)}")
    check(latest[1]["age"] == 34, f"as-of row of user 1 {latest[1]}")
    check(latest[3]["score"] is None, f"null score {latest[3]}")
    check(b2.timestamp == "2025-08-15T00:00:00Z", f"normalised timestamp {b2.timestamp!r}")

    every = ok(batch.sync_detailed(client=client, body=BatchRequest(feature_names=[ITEMS])), 200, BatchResponse, "batch all")
    check(len(every.features[ITEMS]) == 2, "batch without entity_ids returns every row")

    # --- async flavour of one call
    async def async_health() -> Any:
        async with Client(base_url=base_url, raise_on_unexpected_status=True) as ac:
            return await health.asyncio_detailed(client=ac)

    ok(asyncio.run(async_health()), 200, HealthResponse, "async health")

    # --- errors: problem+json parsed into Problem
    problem(get_page.sync_detailed("user", "no_such_table", client=client), 404, "table_not_found", "missing page")
    problem(table_info.sync_detailed("user", "no_such_table", client=client), 404, "table_not_found", "missing info")
    p = problem(get_page.sync_detailed("user", "user_profile", client=client, limit=-1), 400, "invalid_parameter", "limit -1")
    check(not isinstance(p.errors, type(UNSET)) and p.errors[0].field == "limit", f"limit -1 errors {p.errors}")
    problem(get_page.sync_detailed("user", "user_profile", client=client, limit=10**9), 400, "invalid_parameter", "limit huge")
    problem(get_page.sync_detailed("user", "user_profile", client=client, columns="nope"), 400, "unknown_column", "column")
    problem(get_page.sync_detailed("user", "bad.name", client=client), 400, "invalid_name", "bad name")
    p = problem(
        batch.sync_detailed(client=client, body=BatchRequest(feature_names=["user_profile", "nope_a", "nope_b"])),
        404,
        "unknown_feature_tables",
        "unknown batch tables",
    )
    check(not isinstance(p.errors, type(UNSET)) and len(p.errors) == 2, f"unknown tables errors {p.errors}")
    check(all(e.field == "feature_names" for e in p.errors), "unknown tables error fields")
    problem(
        batch.sync_detailed(client=client, body=BatchRequest(feature_names=["user_movie_interactions"], entity_ids=[1])),
        422,
        "composite_entity_key",
        "composite key",
    )
    problem(
        batch.sync_detailed(client=client, body=BatchRequest(feature_names=[ITEMS], entity_ids=["a"], timestamp="2025-01-01T00:00:00Z")),
        422,
        "no_timestamp_field",
        "no timestamp field",
    )
    problem(
        batch.sync_detailed(client=client, body=BatchRequest(feature_names=[USERS], timestamp="yesterday")),
        422,
        "invalid_body",
        "bad timestamp",
    )
    problem(
        save_table.sync_detailed(GROUP, USERS, client=client, body=SaveFeaturesRequest(records=[])),
        422,
        "invalid_body",
        "empty records",
    )
    problem(
        save_table.sync_detailed(GROUP, USERS, client=client, body=SaveFeaturesRequest(records=records([{"x": 1}, {"x": "s"}]))),
        422,
        "invalid_records",
        "mixed column types",
    )
    problem(
        save_table.sync_detailed("othergroup", USERS, client=client, body=request),
        409,
        "table_name_conflict",
        "name in other group",
    )

    # --- delete
    d = ok(delete_table.sync_detailed(GROUP, USERS, client=client), 200, DeleteResponse, "delete")
    check(d.deleted_version == replaced.version, f"deleted_version {d.deleted_version}")
    ok(delete_table.sync_detailed(GROUP, ITEMS, client=client), 200, DeleteResponse, "delete items")
    problem(delete_table.sync_detailed(GROUP, USERS, client=client), 404, "table_not_found", "delete again")
    problem(get_page.sync_detailed(GROUP, USERS, client=client), 404, "table_not_found", "page after delete")

    registry_and_online(client)

    if data_dir:
        broken_storage(client, data_dir)

    # The convenience `sync` functions return the same parsed models.
    check(isinstance(health.sync(client=client), HealthResponse), "health.sync")
    check(isinstance(table_info.sync("user", "nope", client=client), Problem), "table_info.sync on 404")


def online_request(features: list[str], users: list[int | str], layout: Layout | None = None) -> OnlineFeaturesRequest:
    ids = OnlineFeaturesRequestEntities()
    ids.additional_properties = {"user_id": users}
    request = OnlineFeaturesRequest(entities=ids, features=features)
    if layout is not None:
        request.layout = layout
    return request


def registry_and_online(client: Client) -> None:
    """The registry the demo applied, and Feast-style online lookups, through typed models."""
    listed = ok(entities.sync_detailed(client=client), 200, EntityList, "entities")
    check({e.name for e in listed.entities} >= {"user_id", "movie_id"}, "demo entities listed")
    views = ok(feature_views.sync_detailed(client=client), 200, FeatureViewList, "feature views")
    check(any(v.name == "user_profile" for v in views.feature_views), "user_profile listed")
    view = ok(feature_view.sync_detailed("user_profile", client=client), 200, FeatureView, "feature view")
    check(view.ttl_seconds == 7 * 86400, f"user_profile ttl {view.ttl_seconds}")
    check(any(f.name == "age" for f in view.features), "user_profile serves age")
    service = ok(
        feature_service.sync_detailed("movie_recommendation_service", client=client), 200, FeatureService, "service"
    )
    check("user_profile:age" in service.features, "service lists user_profile:age")
    problem(feature_view.sync_detailed("nope", client=client), 404, "registry_object_not_found", "unknown view")

    answer = ok(
        get_online_features.sync_detailed(
            client=client, body=online_request(["user_profile:age", "user_profile:avg_rating"], [1, "2", 99_999_999])
        ),
        200,
        OnlineFeaturesResponse,
        "online columns",
    )
    check(answer.metadata.feature_names == ["user_id", "age", "avg_rating"], f"names {answer.metadata.feature_names}")
    age = answer.results[1]
    check(age.statuses == ["PRESENT", "PRESENT", "NOT_FOUND"], f"age statuses {age.statuses}")
    check(isinstance(age.values[0], int) and age.values[2] is None, f"age values {age.values}")
    check(all(t.endswith("Z") for t in age.event_timestamps), "RFC 3339 UTC timestamps")

    rows = ok(
        get_online_features.sync_detailed(client=client, body=online_request(["user_profile:age"], [1], Layout.ROWS)),
        200,
        OnlineRowsResponse,
        "online rows",
    )
    check(rows.rows[0]["user_id"] == 1 and isinstance(rows.rows[0]["age"], int), f"rows {rows.rows[0].to_dict()}")
    problem(
        get_online_features.sync_detailed(client=client, body=online_request(["nope:x"], [1])),
        404,
        "unknown_feature_views",
        "online unknown view",
    )

    # as_of and last_n are typed request fields; a last_n answer's feature values are lists.
    as_of = online_request(["user_profile:age"], [1])
    as_of.as_of = datetime.datetime.now(datetime.timezone.utc)
    past = ok(get_online_features.sync_detailed(client=client, body=as_of), 200, OnlineFeaturesResponse, "as_of")
    check(past.results[1].statuses == ["PRESENT"], f"as_of statuses {past.results[1].statuses}")
    last = online_request(["user_profile:age"], [1])
    last.last_n = 3
    # The list-valued shapes are parsed as such (they come first in the spec and require
    # last_n), not as the plain shape that would also accept them.
    series = ok(get_online_features.sync_detailed(client=client, body=last), 200, OnlineSeriesResponse, "last_n")
    check(series.last_n == 3, f"last_n echoed {series.last_n}")
    ages = series.results[1].values[0]
    check(isinstance(ages, list) and len(ages) == 3, f"last_n values {series.to_dict()}")
    last_rows = online_request(["user_profile:age"], [1], Layout.ROWS)
    last_rows.last_n = 2
    series_rows = ok(
        get_online_features.sync_detailed(client=client, body=last_rows), 200, OnlineSeriesRowsResponse, "last_n rows"
    )
    check(
        series_rows.last_n == 2 and len(series_rows.rows[0]["age"]) == 2 and len(series_rows.event_timestamps) == 1,
        f"last_n rows {series_rows.to_dict()}",
    )
    last.last_n = 0
    problem(get_online_features.sync_detailed(client=client, body=last), 422, "invalid_body", "last_n 0")
    invalid = RegistryDocument.from_dict(
        {"feature_views": [{"name": "user_profile", "group": "user", "entities": ["ghost"], "timestamp_field": "age"}]}
    )
    bad = problem(apply_definitions.sync_detailed(client=client, body=invalid), 422, "invalid_definitions", "apply")
    check(isinstance(bad.errors, list) and len(bad.errors) >= 2, "apply lists every invalid field")


def broken_storage(client: Client, data_dir: str) -> None:
    """Server-side failures (5xx) are documented, so they parse into Problem too."""
    name = f"sdk_broken_{SUFFIX}"
    body = SaveFeaturesRequest(records=records([{"k": 1, "v": 2}, {"k": 2, "v": 3}]), entity_key=["k"])
    saved = ok(save_table.sync_detailed(GROUP, name, client=client, body=body), 201, SaveFeaturesResponse, "save broken")
    with open(os.path.join(data_dir, saved.file_path), "wb") as f:
        f.write(b"this is not a parquet file")
    # Depending on caching the server may still answer from memory (200), notice the table is
    # gone (404), fail reading it (500), or see it changing under an open snapshot (503);
    # whatever it answers must be documented and parsed.
    calls = {
        "page": lambda: get_page.sync_detailed(GROUP, name, client=client),
        "batch": lambda: batch.sync_detailed(client=client, body=BatchRequest(feature_names=[name], entity_ids=[1])),
        "info": lambda: table_info.sync_detailed(GROUP, name, client=client),
    }
    for what, call in calls.items():
        response = call()  # raises UnexpectedStatus on an undocumented status
        check(response.status_code in (200, 404, 500, 503), f"broken {what}: status {response.status_code}")
        if response.status_code == 200:
            check(response.parsed is not None and not isinstance(response.parsed, Problem), f"broken {what}: parsed")
        else:
            problem(response, response.status_code, response.parsed.code, f"broken {what}")
        print(f"  broken table, {what}: {response.status_code} {type(response.parsed).__name__}")
    response = delete_table.sync_detailed(GROUP, name, client=client)
    check(response.status_code in (200, 404), f"delete broken: {response.status_code}")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: smoke.py BASE_URL [DATA_DIR]")
    try:
        main(sys.argv[1].rstrip("/"), sys.argv[2] if len(sys.argv) == 3 else None)
    except Exception as error:  # noqa: BLE001 - report any failure, with its cause
        import traceback

        traceback.print_exc()
        print(f"SMOKE FAILED after {CHECKS} checks: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"smoke OK: {CHECKS} checks over {', '.join(sorted(EXERCISED))}")
    # Operations added to the spec later are generated (without warnings) but not exercised
    # here until someone adds them; say so rather than fail.
    import pkgutil

    import featurestore_client.api as api_package

    generated = {
        module.name.rsplit(".", 1)[1]
        for module in pkgutil.walk_packages(api_package.__path__, api_package.__name__ + ".")
        if not module.ispkg
    }
    if generated - EXERCISED:
        print(f"note: generated but not exercised: {', '.join(sorted(generated - EXERCISED))}")
