// The registry page: entities, feature views (keys, TTL, features, owner, tags) and feature
// services with the views they read.

import { get } from "./api.js";
import { errorBox, fill, h, scrollTable, section } from "./dom.js";
import { duration } from "./format.js";

function chips(items) {
  return h("div", { class: "chips" }, items.map((item) => h("span", { class: "chip" }, item)));
}

function entities(body, answer) {
  fill(body, answer.entities.length === 0 ? h("p", { class: "muted" }, "No entities registered.") :
    scrollTable(h("table", { class: "data" },
      h("thead", {}, h("tr", {}, h("th", {}, "Entity"), h("th", {}, "Join key"), h("th", {}, "Type"), h("th", {}, "Description"))),
      h("tbody", {}, answer.entities.map((e) => h("tr", { "data-entity": e.name },
        h("td", {}, h("code", {}, e.name)),
        h("td", {}, h("code", {}, e.join_key || e.name)),
        h("td", {}, e.value_type || "—"),
        h("td", { class: "muted" }, e.description || "")))))));
}

function views(body, answer) {
  fill(body, answer.feature_views.length === 0 ? h("p", { class: "muted" }, "No feature views registered.") :
    scrollTable(h("table", { class: "data" },
      h("thead", {}, h("tr", {}, h("th", {}, "View"), h("th", {}, "Table"), h("th", {}, "Keys"), h("th", {}, "TTL"),
        h("th", {}, "Features"), h("th", {}, "Owner"), h("th", {}, "Tags"))),
      h("tbody", {}, answer.feature_views.map((v) => h("tr", { "data-feature-view": v.name },
        h("td", {}, h("code", {}, v.name), v.description ? h("div", { class: "muted small" }, v.description) : null),
        h("td", {}, h("a", { href: `#/tables/${encodeURIComponent(v.group)}/${encodeURIComponent(v.name)}` }, `${v.group}/${v.name}`)),
        h("td", {}, chips(v.entities), h("div", { class: "muted small" }, `time: ${v.timestamp_field}`)),
        h("td", { "data-value": v.ttl_seconds ?? "", class: "nowrap" }, v.ttl_seconds ? duration(v.ttl_seconds) : "none"),
        h("td", {}, chips(v.features.map((f) => `${f.name}: ${f.dtype}`))),
        h("td", {}, v.owner || "—"),
        h("td", {}, chips(Object.entries(v.tags || {}).map(([k, val]) => `${k}=${val}`)))))))));
}

// The views a service reads: from `view:feature` references or whole-view names.
function viewsOf(service) {
  return [...new Set(service.features.map((f) => String(f).split(":")[0]))];
}

function services(body, answer) {
  fill(body, answer.feature_services.length === 0 ? h("p", { class: "muted" }, "No feature services registered.") :
    scrollTable(h("table", { class: "data" },
      h("thead", {}, h("tr", {}, h("th", {}, "Service"), h("th", {}, "Reads views"), h("th", {}, "Features"), h("th", {}, "Pinned versions"))),
      h("tbody", {}, answer.feature_services.map((s) => h("tr", { "data-feature-service": s.name },
        h("td", {}, h("code", {}, s.name), s.description ? h("div", { class: "muted small" }, s.description) : null),
        h("td", {}, chips(viewsOf(s))),
        h("td", {}, chips(s.features.map(String))),
        h("td", { class: "muted" }, Object.entries(s.table_versions || {}).map(([v, n]) => `${v} v${n}`).join(", ") || "—")))))));
}

/** Renders the page into `main`. */
export async function render(main) {
  const [entitySection, entityBody] = section("entities", "Entities");
  const [viewSection, viewBody] = section("feature-views", "Feature views", "one per table");
  const [serviceSection, serviceBody] = section("feature-services", "Feature services");
  fill(main, h("div", { class: "page-head" }, h("h1", {}, "Registry")), entitySection, viewSection, serviceSection);
  const guard = (body, work) => work.catch((error) => fill(body, errorBox(error)));
  await Promise.all([
    guard(entityBody, get("/registry/entities").then((a) => entities(entityBody, a))),
    guard(viewBody, get("/registry/feature-views").then((a) => views(viewBody, a))),
    guard(serviceBody, get("/registry/feature-services").then((a) => services(serviceBody, a))),
  ]);
}
