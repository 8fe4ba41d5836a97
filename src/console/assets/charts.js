// Charts drawn as SVG by hand: a histogram, a bar chart of frequent values and a line of row
// counts over time. A few dozen lines each instead of a charting library: the console stays
// small, loads nothing from elsewhere and works offline. Every chart has axis labels with
// units, and native tooltips (<title>) on its marks.

import { s } from "./dom.js";
import { compact, instant, num, percent } from "./format.js";

const W = 360;
const H = 190;
const M = { top: 10, right: 12, bottom: 40, left: 46 };
const PLOT_W = W - M.left - M.right;
const PLOT_H = H - M.top - M.bottom;

function frame(attrs, title) {
  return s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": title,
    preserveAspectRatio: "xMidYMid meet",
    ...attrs,
  }, s("title", {}, title));
}

function axes(svg, xLabel, yLabel) {
  svg.append(
    s("line", { class: "axis", x1: M.left, y1: M.top + PLOT_H, x2: M.left + PLOT_W, y2: M.top + PLOT_H }),
    s("line", { class: "axis", x1: M.left, y1: M.top, x2: M.left, y2: M.top + PLOT_H }),
    s("text", { class: "axis-label", x: M.left + PLOT_W / 2, y: H - 4, "text-anchor": "middle" }, xLabel),
    s("text", {
      class: "axis-label",
      x: -(M.top + PLOT_H / 2),
      y: 11,
      transform: "rotate(-90)",
      "text-anchor": "middle",
    }, yLabel),
  );
}

function yTicks(svg, max, format) {
  for (const fraction of [0, 0.5, 1]) {
    const y = M.top + PLOT_H - fraction * PLOT_H;
    svg.append(
      s("line", { class: "grid", x1: M.left, y1: y, x2: M.left + PLOT_W, y2: y }),
      s("text", { class: "tick", x: M.left - 4, y: y + 3, "text-anchor": "end" }, format(max * fraction)),
    );
  }
}

function xTick(svg, x, text, anchor) {
  svg.append(
    s("line", { class: "axis", x1: x, y1: M.top + PLOT_H, x2: x, y2: M.top + PLOT_H + 4 }),
    s("text", { class: "tick", x, y: M.top + PLOT_H + 14, "text-anchor": anchor }, text),
  );
}

/**
 * A histogram of a numeric column: one `rect[data-bin]` per bin of the API, bars as tall as
 * the bin's count; x is the column's values (its type as the unit), y is rows.
 */
export function histogram(column, dtype, bins) {
  const svg = frame({ "data-histogram": column }, `Histogram of ${column}`);
  const max = Math.max(1, ...bins.map((b) => b.count));
  axes(svg, `${column} (${dtype} value)`, "rows (count)");
  yTicks(svg, max, (v) => compact(Math.round(v)));
  const width = PLOT_W / Math.max(1, bins.length);
  bins.forEach((bin, i) => {
    const height = (bin.count / max) * PLOT_H;
    svg.append(s("rect", {
      class: "bar",
      "data-bin": i,
      "data-count": bin.count,
      x: M.left + i * width + 0.5,
      y: M.top + PLOT_H - height,
      width: Math.max(0.5, width - 1),
      height,
    }, s("title", {}, `[${num(bin.lower)}, ${num(bin.upper)}${i === bins.length - 1 ? "]" : ")"}: ${num(bin.count)} rows`)));
  });
  if (bins.length > 0) {
    const lo = bins[0].lower;
    const hi = bins[bins.length - 1].upper;
    xTick(svg, M.left, compact(lo), "start");
    if (bins.length > 2) xTick(svg, M.left + PLOT_W / 2, compact((lo + hi) / 2), "middle");
    xTick(svg, M.left + PLOT_W, compact(hi), "end");
  }
  return svg;
}

/**
 * The most frequent values of a string or boolean column as horizontal bars: one
 * `rect[data-bar]` per value, as long as its share of the non-null rows; "other" is drawn
 * apart (`rect[data-other]`).
 */
export function topValues(column, top) {
  const rows = [...top.values.map((v) => ({ ...v, other: false }))];
  if (top.other_count > 0) rows.push({ value: "(other)", count: top.other_count, share: top.other_share, other: true });
  const rowH = 16;
  const left = 96;
  const right = 52;
  const height = 14 + rows.length * rowH + 30;
  const plot = W - left - right;
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": `Most frequent values of ${column}`,
    "data-top-values": column,
  }, s("title", {}, `Most frequent values of ${column}`));
  const maxShare = Math.max(0.0001, ...rows.map((r) => r.share));
  rows.forEach((row, i) => {
    const y = 8 + i * rowH;
    const label = row.value.length > 14 ? `${row.value.slice(0, 13)}…` : row.value;
    const attrs = {
      class: row.other ? "bar other" : "bar",
      x: left,
      y,
      width: Math.max(0.5, (row.share / maxShare) * plot),
      height: rowH - 4,
    };
    if (row.other) attrs["data-other"] = "true";
    else {
      attrs["data-bar"] = i;
      attrs["data-value"] = row.value;
      attrs["data-count"] = row.count;
    }
    svg.append(
      s("text", { class: "tick", x: left - 4, y: y + rowH / 2 + 1, "text-anchor": "end" }, label),
      s("rect", attrs, s("title", {}, `${row.value}: ${num(row.count)} rows (${percent(row.share)})`)),
      s("text", { class: "tick", x: left + attrs.width + 4, y: y + rowH / 2 + 1 }, percent(row.share, 1)),
    );
  });
  const axisY = 8 + rows.length * rowH + 2;
  svg.append(
    s("line", { class: "axis", x1: left, y1: axisY, x2: left + plot, y2: axisY }),
    s("text", { class: "tick", x: left, y: axisY + 11, "text-anchor": "start" }, "0 %"),
    s("text", { class: "tick", x: left + plot, y: axisY + 11, "text-anchor": "end" }, percent(maxShare, 0)),
    s("text", { class: "axis-label", x: left + plot / 2, y: axisY + 24, "text-anchor": "middle" }, "share of non-null rows (%)"),
  );
  return svg;
}

/**
 * Rows of each version over the time it became current: a step line (the row count holds
 * until the next write) with a dot per version.
 */
export function rowCounts(points) {
  const svg = frame({ id: "row-count-chart" }, "Rows per version over time");
  axes(svg, "time the version became current (UTC)", "rows (count)");
  const sorted = [...points].sort((a, b) => a.at - b.at);
  const max = Math.max(1, ...sorted.map((p) => p.rows));
  yTicks(svg, max, (v) => compact(Math.round(v)));
  if (sorted.length === 0) return svg;
  const t0 = sorted[0].at;
  const t1 = sorted[sorted.length - 1].at;
  const span = t1 - t0;
  const x = (t) => (span === 0 ? M.left + PLOT_W / 2 : M.left + ((t - t0) / span) * PLOT_W);
  const y = (rows) => M.top + PLOT_H - (rows / max) * PLOT_H;
  let path = "";
  sorted.forEach((p, i) => {
    path += i === 0 ? `M${x(p.at)},${y(p.rows)}` : `H${x(p.at)}V${y(p.rows)}`;
  });
  svg.append(s("path", { class: "line", d: path }));
  for (const p of sorted) {
    svg.append(s("circle", { class: "dot", cx: x(p.at), cy: y(p.rows), r: 3, "data-point-version": p.version },
      s("title", {}, `v${p.version}: ${num(p.rows)} rows at ${instant(new Date(p.at).toISOString())}`)));
  }
  const day = (t) => new Date(t).toISOString().slice(5, 16).replace("T", " ");
  if (span === 0) xTick(svg, x(t0), day(t0), "middle");
  else {
    xTick(svg, M.left, day(t0), "start");
    xTick(svg, M.left + PLOT_W, day(t1), "end");
  }
  return svg;
}
