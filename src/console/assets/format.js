// How numbers, sizes and instants are shown to people. Raw values stay in `data-value`
// attributes; these functions only shape the visible text.

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** 1234567 → "1,234,567"; non-integers with up to 4 significant decimals. */
export function num(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return integer.format(value);
  const abs = Math.abs(value);
  if (abs >= 1e6 || abs < 1e-3) return value.toPrecision(4);
  return new Intl.NumberFormat("en-US", { maximumSignificantDigits: abs >= 1000 ? 7 : 5 }).format(value);
}

/** Short axis labels: 12000 → "12k". */
export function compact(value) {
  if (!Number.isFinite(value)) return String(value);
  return new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 }).format(value);
}

/** A ratio as a percentage: 0.0312 → "3.12 %". */
export function percent(ratio, digits = 2) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return "—";
  return `${(ratio * 100).toFixed(digits)} %`;
}

/** Bytes as B, KiB, MiB or GiB. */
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Seconds as the largest sensible unit: 90061 → "1 d 1 h". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.abs(seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ""}`;
  }
  const h = Math.floor((s % 86400) / 3600);
  return `${Math.floor(s / 86400)} d${h ? ` ${h} h` : ""}`;
}

/** An instant relative to now: "5 min ago". */
export function ago(iso) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return "—";
  const seconds = (Date.now() - at) / 1000;
  if (seconds < 0) return `in ${duration(-seconds)}`;
  if (seconds < 5) return "just now";
  return `${duration(seconds)} ago`;
}

/** An instant as "2026-12-06 19:41:33 UTC", the form the API's answers use, made readable. */
export function instant(iso) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso || "—";
  return new Date(at).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
}
