// The server page: request rate, errors, latency percentiles and cache hit rates from
// `GET /performance`, refreshed every few seconds while the page is open.

import { get } from "./api.js";
import { errorBox, fill, h, scrollTable, section } from "./dom.js";
import { bytes, duration, num, percent } from "./format.js";

const REFRESH_MS = 5000;

function metric(name, label, value, text, note) {
  return h("div", { class: "metric", "data-metric": name, "data-value": value === null || value === undefined ? "" : String(value) },
    h("div", { class: "metric-label muted" }, label),
    h("div", { class: "metric-value" }, text ?? num(value)),
    note ? h("div", { class: "metric-note muted small" }, note) : null);
}

function cacheRow(name, c) {
  if (!c) return null;
  return h("tr", { "data-cache": name },
    h("td", {}, name),
    h("td", {}, c.enabled ? "on" : h("span", { class: "muted" }, `off${c.disabled_reason ? ` (${c.disabled_reason})` : ""}`)),
    h("td", { class: "num" }, num(c.items)),
    h("td", { class: "num" }, bytes(c.bytes)),
    h("td", { class: "num" }, percent(c.usage_ratio, 1)),
    h("td", { class: "num" }, num(c.hits)),
    h("td", { class: "num" }, num(c.misses)),
    h("td", { class: "num" }, percent(c.hit_rate, 1)),
    h("td", { class: "num" }, num(c.evictions)));
}

function draw(body, report, health, previous) {
  const p = report.performance_metrics;
  const uptime = p.uptime_seconds || 0;
  let rate = uptime > 0 ? p.total_requests / uptime : 0;
  let rateNote = "average since start";
  if (previous && p.uptime_seconds > previous.uptime_seconds) {
    rate = (p.total_requests - previous.total_requests) / (p.uptime_seconds - previous.uptime_seconds);
    rateNote = `over the last ${duration(p.uptime_seconds - previous.uptime_seconds)}`;
  }
  const errorRate = p.total_requests ? p.error_count / p.total_requests : 0;
  const memory = report.memory_cache_stats;
  const disk = report.disk_cache_stats;
  const storage = report.storage_info || {};
  fill(body,
    h("div", { class: "metrics" },
      metric("request_rate", "requests / s", Math.round(rate * 1000) / 1000, num(Math.round(rate * 100) / 100), rateNote),
      metric("requests", "requests", p.total_requests, null, `since start, ${duration(uptime)} ago`),
      metric("errors", "errors (4xx, 5xx)", p.error_count, null, `${percent(errorRate)} of requests`),
      metric("latency_mean_ms", "latency mean", p.latency_mean_ms, `${num(p.latency_mean_ms)} ms`),
      metric("latency_p50_ms", "latency p50", p.latency_p50_ms, `${num(p.latency_p50_ms)} ms`),
      metric("latency_p99_ms", "latency p99", p.latency_p99_ms, `${num(p.latency_p99_ms)} ms`),
      metric("memory_cache_hit_rate", "memory cache hit rate", memory ? memory.hit_rate : null, memory ? percent(memory.hit_rate, 1) : "—"),
      metric("disk_cache_hit_rate", "disk cache hit rate", disk ? disk.hit_rate : null, disk ? percent(disk.hit_rate, 1) : "—"),
      metric("uptime_seconds", "uptime", uptime, duration(uptime))),
    h("h3", {}, "Caches"),
    scrollTable(h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["Tier", "State", "Items", "Bytes", "Full", "Hits", "Misses", "Hit rate", "Evictions"]
        .map((t, i) => h("th", { class: i > 1 ? "num" : null }, t)))),
      h("tbody", {}, cacheRow("memory", memory), cacheRow("disk", disk)))),
    h("h3", {}, "Storage"),
    h("p", {}, `${num(storage.tables)} tables in ${num(storage.total_feature_groups)} groups · ${num(storage.total_size_mb)} MiB`,
      storage.history_bytes ? ` · ${bytes(storage.history_bytes)} kept for earlier versions` : "",
      health ? ` · ${health.status}, version ${health.version}, ${health.backend || ""}` : ""),
    h("p", { class: "muted small" }, `Refreshed every ${REFRESH_MS / 1000} s while this page is open.`));
  return p;
}

/** Renders the page into `main`, and keeps it current until `signal` aborts. */
export async function render(main, _params, signal) {
  const [metricsSection, body] = section("performance", "Performance", "GET /performance");
  fill(main, h("div", { class: "page-head" }, h("h1", {}, "Server")), metricsSection);
  const load = () => Promise.all([get("/performance"), get("/health").catch(() => null)]);
  let [report, health] = await load();
  let previous = draw(body, report, health, null);
  const timer = setInterval(async () => {
    if (signal.aborted || document.getElementById("main").dataset.page !== "server") {
      clearInterval(timer);
      return;
    }
    try {
      [report, health] = await load();
      if (!signal.aborted) previous = draw(body, report, health, previous);
    } catch (error) {
      if (!signal.aborted) fill(body, errorBox(error));
    }
  }, REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}
