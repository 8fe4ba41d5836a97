// The tables page: every table by group with rows, size, version, last write and freshness
// against its feature view's TTL, filtered as you type.

import { get, tablePath } from "./api.js";
import { errorBox, fill, h, scrollTable } from "./dom.js";
import { ago, bytes, duration, instant, num } from "./format.js";

// Within TTL but in its last quarter: still fresh, shown amber so it is noticed in time.
const AGING_SHARE = 0.75;

/**
 * How fresh a table is: `fresh` when its last write is within its view's TTL, `stale` when
 * older, `no_ttl` without a view or a TTL, `unknown` when the last write could not be read.
 * `tone` picks the colour (green, amber for the last quarter of the TTL, red, grey).
 */
export function freshness(lastWrite, ttlSeconds, now = Date.now()) {
  if (ttlSeconds === undefined) return { state: "unknown", tone: "grey", text: "unknown (registry unreadable)" };
  if (!ttlSeconds) return { state: "no_ttl", tone: "grey", text: "no TTL" };
  const at = Date.parse(lastWrite);
  if (!lastWrite || Number.isNaN(at)) return { state: "unknown", tone: "grey", text: "unknown (no last write)" };
  const age = Math.max(0, (now - at) / 1000);
  const ttl = `TTL ${duration(ttlSeconds)}`;
  if (age > ttlSeconds) return { state: "stale", tone: "red", text: `stale · ${ttl}` };
  if (age > AGING_SHARE * ttlSeconds) return { state: "fresh", tone: "amber", text: `expiring · ${ttl}` };
  return { state: "fresh", tone: "green", text: `fresh · ${ttl}` };
}

/** The legend of the freshness colours. */
export function legend() {
  const item = (tone, label) => h("span", { class: "legend-item" }, h("span", { class: `dot ${tone}` }), label);
  return h("p", { class: "legend" },
    item("green", "fresh: last write within the view's TTL"),
    item("amber", "fresh, in the TTL's last quarter"),
    item("red", "stale: older than the TTL"),
    item("grey", "no TTL (or no view), or unknown"));
}

async function lastWrite(group, name) {
  const versions = await get(tablePath(group, name, "/versions?limit=1"));
  return versions.versions.length ? versions.versions[0].became_current : null;
}

function row(table, view, written) {
  const key = `${table.group}/${table.name}`;
  // `view` is undefined when the registry could not be read: the TTL is then unknown.
  const fresh = freshness(written, view === undefined ? undefined : view && view.ttl_seconds);
  const href = `#/tables/${encodeURIComponent(table.group)}/${encodeURIComponent(table.name)}`;
  const tr = h("tr", { "data-table": key, class: "link-row", onclick: (event) => {
    if (event.target.closest("a")) return;
    location.hash = href;
  } },
  h("td", { class: "muted col-group" }, table.group),
  h("td", { class: "col-name" }, h("span", { class: "group-inline muted" }, `${table.group} / `), h("a", { href }, table.name)),
  h("td", { class: "num", "data-field": "rows", "data-label": "rows", "data-value": table.rows }, num(table.rows)),
  h("td", { class: "num", "data-field": "size", "data-label": "size", "data-value": table.file_size_bytes }, bytes(table.file_size_bytes)),
  h("td", { class: "num", "data-field": "version", "data-label": "version", "data-value": table.version }, table.version ?? "—"),
  h("td", { "data-field": "last_write", "data-label": "last write", "data-value": written || "", title: written ? instant(written) : "" }, written ? ago(written) : "—"),
  h("td", { "data-field": "freshness", "data-freshness": fresh.state, class: `freshness ${fresh.tone}` },
    h("span", { class: `dot ${fresh.tone}` }), fresh.text));
  return tr;
}

/** Renders the page into `main`. */
export async function render(main) {
  const [tables, views] = await Promise.all([
    get("/features"),
    get("/registry/feature-views").catch(() => null),
  ]);
  const list = Object.entries(tables.groups || {})
    .flatMap(([group, entries]) => entries.map((t) => ({ ...t, group })))
    .sort((a, b) => a.group.localeCompare(b.group) || a.name.localeCompare(b.name));
  const viewOf = new Map((views ? views.feature_views : []).map((v) => [`${v.group}/${v.name}`, v]));
  const view = (t) => (views ? viewOf.get(`${t.group}/${t.name}`) || null : undefined);
  const written = await Promise.all(list.map((t) => lastWrite(t.group, t.name).catch(() => null)));

  const search = h("input", {
    id: "table-search",
    type: "search",
    placeholder: "Filter tables by group or name",
    "aria-label": "Filter tables",
    autocomplete: "off",
  });
  const body = h("tbody", {}, list.map((t, i) => row(t, view(t), written[i])));
  const empty = h("p", { class: "muted empty", hidden: list.length > 0 },
    list.length ? "No table matches the filter." : "No tables yet: save one with POST /features/{group}/{name}, or run `featurestore demo`.");
  search.addEventListener("input", () => {
    const needle = search.value.trim().toLowerCase();
    let shown = 0;
    for (const tr of body.rows) {
      const match = tr.dataset.table.toLowerCase().includes(needle);
      tr.hidden = !match;
      if (match) shown += 1;
    }
    empty.hidden = shown > 0;
  });
  const totalRows = list.reduce((sum, t) => sum + (t.rows || 0), 0);
  const totalBytes = list.reduce((sum, t) => sum + (t.file_size_bytes || 0), 0);
  const groups = new Set(list.map((t) => t.group)).size;
  fill(main,
    h("div", { class: "page-head" },
      h("h1", {}, "Tables"),
      h("p", { class: "muted" }, `${list.length} tables in ${groups} groups · ${num(totalRows)} rows · ${bytes(totalBytes)}`)),
    h("section", { class: "card" },
      h("div", { class: "toolbar" }, search, legend()),
      scrollTable(h("table", { class: "data", id: "tables" },
        h("thead", {}, h("tr", {},
          h("th", { class: "col-group" }, "Group"), h("th", {}, "Table"), h("th", { class: "num" }, "Rows"),
          h("th", { class: "num" }, "Size"), h("th", { class: "num" }, "Version"),
          h("th", {}, "Last write"), h("th", {}, "Freshness"))),
        body)),
      empty),
    tables.groups ? null : errorBox({ code: "unexpected_answer", detail: "GET /features answered no groups" }));
}
