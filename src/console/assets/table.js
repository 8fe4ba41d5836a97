// A table's page: its schema, per-column statistics with charts, a paged preview of the rows,
// the version history with the row count over time, and drift against the previous version.
// Each section loads on its own: one failing (a route the server lacks, a version past
// retention) shows its error and leaves the others working.

import { get, tablePath } from "./api.js";
import { rowCounts } from "./charts.js";
import { errorBox, fill, h, loading, scrollTable, section } from "./dom.js";
import { ago, bytes, instant, num, percent } from "./format.js";
import { renderStats } from "./table_stats.js";

const PREVIEW_ROWS = 20;
const VERSIONS_SHOWN = 50;

function header(info, group, name) {
  const s = info.storage_info;
  const fact = (label, value) => h("div", { class: "fact" }, h("span", { class: "muted" }, label), h("strong", {}, value));
  return h("div", { class: "page-head" },
    h("p", { class: "crumbs" }, h("a", { href: "#/tables" }, "Tables"), " / ", group),
    h("h1", {}, name),
    h("div", { class: "facts" },
      fact("rows", num(s.row_count)),
      fact("columns", num(s.column_count)),
      fact("version", s.version ?? "—"),
      fact("size", bytes(s.file_size_bytes)),
      fact("compression", `${s.compression}, ${percent(s.compression_ratio, 0)} of in-memory`),
      fact("entity key", (s.entity_key || []).join(", ") || "—"),
      fact("timestamp", s.timestamp_field || "—"),
      fact("file", s.file_path)));
}

function schema(body, info) {
  const s = info.storage_info;
  const role = (column) => {
    if ((s.entity_key || []).includes(column)) return h("span", { class: "badge" }, "entity key");
    if (s.timestamp_field === column) return h("span", { class: "badge" }, "timestamp");
    return null;
  };
  fill(body, scrollTable(h("table", { class: "data" },
    h("thead", {}, h("tr", {}, h("th", {}, "Column"), h("th", {}, "Logical type"), h("th", {}, "Stored type"), h("th", {}, ""))),
    h("tbody", {}, s.columns.map((c) => h("tr", { "data-column": c.name },
      h("td", {}, h("code", {}, c.name)),
      h("td", { "data-field": "logical_type" }, c.logical_type),
      h("td", { "data-field": "stored_type", class: "muted" }, c.stored_type),
      h("td", {}, role(c.name))))))));
}

function cell(value) {
  if (value === null || value === undefined) return h("td", { class: "null" }, "null");
  if (typeof value === "number") return h("td", { class: "num" }, String(value));
  if (typeof value === "object") return h("td", {}, JSON.stringify(value));
  return h("td", {}, String(value));
}

async function preview(body, group, name, offset) {
  const page = await get(tablePath(group, name, `?limit=${PREVIEW_ROWS}&offset=${offset}`));
  const meta = page.metadata;
  const columns = meta.columns || Object.keys(page.data[0] || {});
  const prev = h("button", { type: "button", id: "preview-prev", class: "secondary", disabled: offset === 0 }, "← Previous");
  const next = h("button", { type: "button", id: "preview-next", class: "secondary", disabled: meta.next_offset === null }, "Next →");
  const go = (to) => preview(body, group, name, to).catch((error) => fill(body, errorBox(error)));
  prev.addEventListener("click", () => go(Math.max(0, offset - PREVIEW_ROWS)));
  next.addEventListener("click", () => go(meta.next_offset));
  const first = meta.returned_rows ? offset + 1 : 0;
  fill(body,
    scrollTable(h("table", { class: "data compact", id: "preview", "data-offset": offset },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
      h("tbody", {}, page.data.map((record) => h("tr", {}, columns.map((c) => cell(record[c]))))))),
    h("div", { class: "pager" }, prev,
      h("span", { class: "muted", id: "preview-range" }, `rows ${num(first)}–${num(offset + meta.returned_rows)} of ${num(meta.total_rows)}`),
      next));
}

function changes(v) {
  const parts = [];
  if (v.columns_added.length && v.op !== "create") parts.push(`+${v.columns_added.join(", +")}`);
  if (v.columns_removed.length) parts.push(`−${v.columns_removed.join(", −")}`);
  if (v.columns_retyped.length) parts.push(`retyped ${v.columns_retyped.map((c) => c.name || c).join(", ")}`);
  if (v.restored_from) parts.push(`restored from v${v.restored_from}`);
  return parts.join("; ");
}

function versions(body, list) {
  const points = list.versions.filter((v) => v.rows !== null && v.rows !== undefined)
    .map((v) => ({ version: v.version, rows: v.rows, at: Date.parse(v.became_current) }));
  fill(body, h("div", { class: "versions-grid" },
    h("div", { class: "chart-box" }, rowCounts(points)),
    h("div", { class: "versions-list" }, scrollTable(h("table", { class: "data" },
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Version"), h("th", {}, "Operation"), h("th", {}, "Became current"),
        h("th", { class: "num" }, "Rows"), h("th", { class: "num" }, "Rows written"), h("th", { class: "num" }, "Bytes written"),
        h("th", {}, "Written by"), h("th", {}, "Changes"))),
      h("tbody", {}, list.versions.map((v) => h("tr", { "data-version": v.version, class: v.current ? "current" : null },
        h("td", { class: "num" }, `v${v.version}`, v.current ? h("span", { class: "badge" }, "current") : null),
        h("td", {}, v.op),
        h("td", { title: instant(v.became_current) }, ago(v.became_current)),
        h("td", { class: "num" }, num(v.rows)),
        h("td", { class: "num" }, num(v.rows_written)),
        h("td", { class: "num" }, bytes(v.bytes_written)),
        h("td", { class: "muted" }, v.written_by || "—"),
        h("td", { class: "muted" }, changes(v))))))),
    list.total_versions > list.versions.length
      ? h("p", { class: "muted small" }, `The ${list.versions.length} newest of ${list.total_versions} versions.`)
      : null)));
}

function signed(value, format) {
  if (value === null || value === undefined) return "—";
  return `${value > 0 ? "+" : ""}${format(value)}`;
}

function drift(body, answer) {
  const over = answer.over_threshold || [];
  fill(body,
    h("p", { class: over.length ? "drift-summary alert" : "drift-summary" },
      over.length
        ? `${over.length} column${over.length > 1 ? "s" : ""} over the PSI threshold ${answer.threshold}: ${over.join(", ")}`
        : `No column over the PSI threshold ${answer.threshold}.`),
    scrollTable(h("table", { class: "data" },
      h("thead", {}, h("tr", {}, h("th", {}, "Column"), h("th", {}, "Status"), h("th", { class: "num" }, "PSI"),
        h("th", { class: "num" }, "Null rate"), h("th", { class: "num" }, "Δ null rate"),
        h("th", { class: "num" }, "Mean"), h("th", { class: "num" }, "Δ mean"))),
      h("tbody", {}, answer.columns.map((c) => h("tr", {
        "data-drift-column": c.name,
        "data-over-threshold": c.over_threshold ? "true" : "false",
        class: c.over_threshold ? "over" : null,
      },
      h("td", {}, h("code", {}, c.name), c.over_threshold ? h("span", { class: "badge red" }, "drift") : null),
      h("td", { class: "muted" }, c.status),
      h("td", { class: "num", "data-value": c.psi ?? "" }, c.psi === null || c.psi === undefined ? "—" : c.psi.toFixed(3)),
      h("td", { class: "num" }, `${percent(c.null_rate_from)} → ${percent(c.null_rate_to)}`),
      h("td", { class: "num" }, signed(c.null_rate_change, (v) => percent(v))),
      h("td", { class: "num" }, c.mean_from === null || c.mean_from === undefined ? "—" : `${num(c.mean_from)} → ${num(c.mean_to)}`),
      h("td", { class: "num" }, signed(c.mean_change, num))))))));
}

/** Renders the page of `group/name` into `main`. */
export async function render(main, { group, name }) {
  const [schemaSection, schemaBody] = section("schema", "Schema", "logical types as served, stored types as on disk");
  const [statsSection, statsBody] = section("stats", "Statistics", "per column, of the current version");
  const [previewSection, previewBody] = section("preview", "Rows", `${PREVIEW_ROWS} per page`);
  const [versionsSection, versionsBody] = section("versions", "Versions", "newest first");
  const [driftSection, driftBody] = section("drift", "Drift", "against the previous version");
  for (const body of [schemaBody, statsBody, previewBody, versionsBody, driftBody]) body.append(loading());
  const head = h("div", { class: "page-head" }, h("p", { class: "crumbs" }, h("a", { href: "#/tables" }, "Tables"), " / ", group), h("h1", {}, name));
  // Buttons rather than #anchors: the hash is the page's route.
  const jumps = h("div", { class: "jumps" }, [schemaSection, statsSection, previewSection, versionsSection, driftSection]
    .map((target) => h("button", { type: "button", class: "link", onclick: () => target.scrollIntoView({ behavior: "smooth" }) },
      target.querySelector("h2").textContent)));
  fill(main, head, jumps, schemaSection, statsSection, previewSection, versionsSection, driftSection);

  const guard = (body, work) => work.catch((error) => fill(body, errorBox(error)));
  const info = get(tablePath(group, name, "/info"));
  const history = get(tablePath(group, name, `/versions?limit=${VERSIONS_SHOWN}`));
  await Promise.all([
    guard(schemaBody, info.then((answer) => {
      head.replaceWith(header(answer, group, name));
      schema(schemaBody, answer);
    })),
    guard(statsBody, get(tablePath(group, name, "/stats")).then((answer) => renderStats(statsBody, answer))),
    guard(previewBody, preview(previewBody, group, name, 0)),
    guard(versionsBody, history.then((list) => versions(versionsBody, list))),
    guard(driftBody, history.catch(() => null).then((list) => {
      if (list && list.total_versions < 2) {
        fill(driftBody, h("p", { class: "muted" }, "Only one version so far: drift is shown once the table is written again."));
        return null;
      }
      return get(tablePath(group, name, "/drift")).then((answer) => {
        driftSection.querySelector(".section-head .muted").textContent = `v${answer.from_version} → v${answer.to_version}`;
        drift(driftBody, answer);
      });
    })),
  ]);
}
