// The statistics section of a table's page: one card per column with its figures (each in a
// `[data-stat]` element whose data-value is the API's number) and its chart: a histogram for
// numbers, the most frequent values for strings and booleans.

import { histogram, topValues } from "./charts.js";
import { fill, h } from "./dom.js";
import { duration, instant, num, percent } from "./format.js";

const PERCENTILES = ["p1", "p5", "p25", "p50", "p75", "p95", "p99"];

// Which figure names the engine may mark approximate, by the figures they cover.
const APPROXIMATE_OF = {
  distinct: "distinct",
  p1: "percentiles", p5: "percentiles", p25: "percentiles", p50: "percentiles",
  p75: "percentiles", p95: "percentiles", p99: "percentiles",
};

function figure(column, name, label, value, text) {
  const approximate = (column.approximate || []).includes(APPROXIMATE_OF[name]);
  return h("div", { class: "figure" },
    h("dt", {}, label),
    h("dd", {
      "data-stat": name,
      "data-value": value === null || value === undefined ? "" : String(value),
      title: approximate ? "estimated" : null,
    }, approximate ? "≈ " : "", text ?? num(value)));
}

function card(column) {
  const figures = [
    figure(column, "rows", "rows", column.rows),
    figure(column, "null_count", "nulls", column.null_count),
    figure(column, "null_rate", "null rate", column.null_rate, percent(column.null_rate)),
    figure(column, "distinct", "distinct", column.distinct),
  ];
  let chart = null;
  if (column.numeric) {
    const n = column.numeric;
    figures.push(
      figure(column, "min", "min", n.min),
      figure(column, "max", "max", n.max),
      figure(column, "mean", "mean", n.mean),
      figure(column, "std", "std", n.std),
      ...PERCENTILES.map((p) => figure(column, p, p, n.percentiles[p])),
    );
    chart = histogram(column.name, column.dtype, n.histogram);
  } else if (column.top_values) {
    chart = topValues(column.name, column.top_values);
  } else if (column.timestamps) {
    const t = column.timestamps;
    figures.push(
      figure(column, "min", "oldest", t.min, instant(t.min)),
      figure(column, "max", "newest", t.max, instant(t.max)),
    );
    if (t.newest_age_seconds !== undefined && t.newest_age_seconds !== null) {
      figures.push(figure(column, "newest_age_seconds", "newest age", t.newest_age_seconds, duration(t.newest_age_seconds)));
    }
  }
  const approx = (column.approximate || []).length
    ? h("p", { class: "muted small" }, `Estimated: ${column.approximate.join(", ")}`)
    : null;
  return h("div", { class: `column-card kind-${column.kind}`, "data-column": column.name },
    h("div", { class: "column-head" }, h("code", {}, column.name), h("span", { class: "muted" }, `${column.dtype} · ${column.kind}`)),
    h("dl", { class: "figures" }, figures),
    chart ? h("div", { class: "chart-box" }, chart) : null,
    approx);
}

/** Fills `body` with the cards of a `GET .../stats` answer. */
export function renderStats(body, answer) {
  fill(body,
    h("p", { class: "muted small" }, `Version ${answer.version} · ${num(answer.rows)} rows`),
    h("div", { class: "column-grid" }, answer.columns.map(card)));
}
