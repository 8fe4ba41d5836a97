// The "Try it" page: an online lookup and a training-data request built from forms, with the
// answer as a table and the equivalent curl command beside it, so what works here can be
// pasted into a terminal or a script.

import { curl, get, post } from "./api.js";
import { errorBox, fill, h, scrollTable, section } from "./dom.js";
import { ago, instant } from "./format.js";

// The event time Feast answers for a value it does not have.
const NO_EVENT = "1970-01-01T00:00:00Z";

class InputError extends Error {
  constructor(detail) {
    super(detail);
    this.code = "invalid_input";
    this.detail = detail;
  }
}

function lines(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}

function parseJson(text, what, check) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${what} is not valid JSON: ${error.message}`);
  }
  if (!check(value)) throw new InputError(`${what} has the wrong shape`);
  return value;
}

function lookupBody(service, features, entities) {
  const keys = parseJson(entities.value, "Entity keys", (v) => v && typeof v === "object" && !Array.isArray(v)
    && Object.values(v).every(Array.isArray));
  if (service.value) return { feature_service: service.value, entities: keys };
  const refs = lines(features.value);
  if (refs.length === 0) throw new InputError("Choose a feature service or list features, one view:feature per line");
  return { features: refs, entities: keys };
}

// Entity rows (one object each) as the columns the API takes.
function trainingBody(features, entities) {
  const rows = parseJson(entities.value, "Entity rows", (v) => Array.isArray(v) && v.length > 0
    && v.every((r) => r && typeof r === "object" && !Array.isArray(r)));
  const refs = lines(features.value);
  if (refs.length === 0) throw new InputError("List features, one view:feature per line");
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const columns = Object.fromEntries(names.map((n) => [n, rows.map((r) => (n in r ? r[n] : null))]));
  return { features: refs, entities: columns };
}

function lookupResult(answer) {
  const names = answer.metadata.feature_names;
  const count = answer.results.length ? answer.results[0].values.length : 0;
  const rows = [];
  for (let i = 0; i < count; i += 1) {
    rows.push(h("tr", {}, h("td", { class: "muted num" }, i), names.map((name, f) => {
      const result = answer.results[f];
      const value = result.values[i];
      const status = result.statuses[i];
      const event = result.event_timestamps[i];
      return h("td", {
        "data-feature": name,
        "data-entity-index": i,
        "data-value": JSON.stringify(value),
        "data-status": status,
        "data-event-time": event,
        class: value === null ? "null" : null,
      },
      h("div", { class: "value" }, value === null ? "null" : String(value)),
      h("div", { class: "small" }, h("span", { class: `status ${status}` }, status), " ",
        event && event !== NO_EVENT ? h("span", { class: "muted", title: instant(event) }, ago(event)) : null));
    })));
  }
  return scrollTable(h("table", { class: "data", id: "lookup-result" },
    h("thead", {}, h("tr", {}, h("th", {}, "#"), names.map((n) => h("th", {}, n)))),
    h("tbody", {}, rows)));
}

function trainingResult(answer) {
  const names = answer.metadata.feature_names;
  const meta = answer.metadata;
  const versions = Object.entries(meta.table_versions || {}).map(([v, n]) => `${v} v${n}`).join(", ");
  return [
    h("p", { class: "muted small" }, `${meta.rows} rows, ${meta.matched_rows ?? "?"} matched · read ${versions || "no table"}`),
    scrollTable(h("table", { class: "data", id: "training-result" },
      h("thead", {}, h("tr", {}, names.map((n) => h("th", {}, n)))),
      h("tbody", {}, answer.rows.map((row) => h("tr", {}, names.map((n) => h("td", {
        "data-column": n,
        "data-value": JSON.stringify(row[n] ?? null),
        class: row[n] === null || row[n] === undefined ? "null" : null,
      }, row[n] === null || row[n] === undefined ? "null" : String(row[n])))))))),
  ];
}

// Wires a form: the curl follows the inputs as they change; submit sends the request.
function wire({ inputs, button, curlBox, output, path, build, show }) {
  const refresh = () => {
    try {
      curlBox.textContent = curl("POST", path, build());
    } catch (error) {
      curlBox.textContent = `# ${error.detail || error.message}`;
    }
  };
  for (const input of inputs) {
    input.addEventListener("input", refresh);
    input.addEventListener("change", refresh);
  }
  refresh();
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    output.removeAttribute("data-ready");
    button.disabled = true;
    try {
      const body = build();
      curlBox.textContent = curl("POST", path, body);
      fill(output, show(await post(path, body)));
    } catch (error) {
      fill(output, errorBox(error));
    } finally {
      button.disabled = false;
      output.dataset.ready = "true";
    }
  });
}

// Starting values that work on this server: a couple of features of each view the first
// service reads (else of the first view), and the join keys of those views.
function samples(services, views) {
  const byName = new Map(views.map((v) => [v.name, v]));
  let refs = [];
  if (services.length) {
    const perView = new Map();
    for (const ref of services[0].features.map(String).filter((f) => f.includes(":"))) {
      const view = ref.split(":")[0];
      if ((perView.get(view) || 0) < 2 && refs.length < 4) {
        refs.push(ref);
        perView.set(view, (perView.get(view) || 0) + 1);
      }
    }
  } else if (views[0]) {
    refs = views[0].features.slice(0, 3).map((f) => `${views[0].name}:${f.name}`);
  }
  return { refs, keys: keysOf(refs, byName) };
}

// The join keys of the views `refs` read (whole-view names or view:feature).
function keysOf(refs, byName) {
  const keys = [...new Set(refs.flatMap((r) => (byName.get(String(r).split(":")[0]) || { entities: [] }).entities))];
  return keys.length ? keys : ["entity_id"];
}

// Sample entity keys as people write JSON: {"user_id": [1, 2], "movie_id": [1, 2]}.
function sampleKeys(keys) {
  return `{${keys.map((k) => `${JSON.stringify(k)}: [1, 2]`).join(", ")}}`;
}

// Sample entity rows, one per line.
function sampleRows(keys, now) {
  const row = (id) => `{${keys.map((k) => `${JSON.stringify(k)}: ${id}`).join(", ")}, "event_timestamp": "${now}"}`;
  return `[\n  ${row(1)},\n  ${row(2)}\n]`;
}

function field(label, control, hint) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hint ? h("p", { class: "muted small" }, hint) : null);
}

/** Renders the page into `main`. */
export async function render(main) {
  const [services, views] = await Promise.all([get("/registry/feature-services"), get("/registry/feature-views")]);
  const { refs, keys } = samples(services.feature_services, views.feature_views);
  const byName = new Map(views.feature_views.map((v) => [v.name, v]));
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const sampleFeatures = refs.join("\n");

  const service = h("select", { id: "lookup-service" }, h("option", { value: "" }, "— the features listed below —"),
    services.feature_services.map((s) => h("option", { value: s.name }, s.name)));
  const features = h("textarea", { id: "lookup-features", rows: 4, spellcheck: "false", value: sampleFeatures });
  const entities = h("textarea", { id: "lookup-entities", rows: 3, spellcheck: "false", value: sampleKeys(keys) });
  const lookupButton = h("button", { type: "submit", id: "lookup-submit" }, "Look up");
  const lookupCurl = h("pre", { id: "lookup-curl", class: "curl" });
  const lookupOutput = h("div", { id: "lookup-output", class: "output" }, h("p", { class: "muted" }, "Values, their statuses and event times appear here."));
  // Choosing a service shows what it reads; the sample keys follow until the user edits them.
  let keysEdited = false;
  entities.addEventListener("input", () => { keysEdited = true; });
  service.addEventListener("change", () => {
    const chosen = services.feature_services.find((s) => s.name === service.value);
    features.disabled = Boolean(chosen);
    features.value = chosen ? chosen.features.map(String).join("\n") : sampleFeatures;
    if (!keysEdited) entities.value = sampleKeys(keysOf(chosen ? chosen.features : refs, byName));
  });

  const trainingFeatures = h("textarea", { id: "training-features", rows: 4, spellcheck: "false", value: sampleFeatures });
  const trainingEntities = h("textarea", { id: "training-entities", rows: 8, spellcheck: "false", value: sampleRows(keys, now) });
  const trainingButton = h("button", { type: "submit", id: "training-submit" }, "Get training rows");
  const trainingCurl = h("pre", { id: "training-curl", class: "curl" });
  const trainingOutput = h("div", { id: "training-output", class: "output" }, h("p", { class: "muted" }, "The joined rows appear here."));

  const [lookupSection, lookupBodyEl] = section("lookup", "Online lookup", "POST /get-online-features");
  lookupBodyEl.append(h("form", { class: "form-grid" },
    h("div", { class: "form-inputs" },
      field("Feature service", service),
      field("Features", features, "One view:feature per line; used when no service is chosen."),
      field("Entity keys", entities, "A JSON object of join key → list of values, e.g. {\"user_id\": [1, 2]}."),
      h("div", { class: "buttons" }, lookupButton)),
    h("div", { class: "form-curl" }, h("div", { class: "muted small" }, "The same request with curl"), lookupCurl)),
  lookupOutput);

  const [trainingSection, trainingBodyEl] = section("training", "Training data", "POST /get-historical-features");
  trainingBodyEl.append(h("form", { class: "form-grid" },
    h("div", { class: "form-inputs" },
      field("Features", trainingFeatures, "One view:feature per line."),
      field("Entity rows", trainingEntities, "A JSON array of rows: join keys and event_timestamp (RFC 3339), plus any label columns."),
      h("div", { class: "buttons" }, trainingButton)),
    h("div", { class: "form-curl" }, h("div", { class: "muted small" }, "The same request with curl"), trainingCurl)),
  trainingOutput);

  fill(main, h("div", { class: "page-head" }, h("h1", {}, "Try it"),
    h("p", { class: "muted" }, "Point-in-time correct values as a model would get them, online or for training.")),
  lookupSection, trainingSection);

  wire({
    inputs: [service, features, entities], button: lookupButton, curlBox: lookupCurl, output: lookupOutput,
    path: "/get-online-features", build: () => lookupBody(service, features, entities), show: lookupResult,
  });
  wire({
    inputs: [trainingFeatures, trainingEntities], button: trainingButton, curlBox: trainingCurl, output: trainingOutput,
    path: "/get-historical-features", build: () => trainingBody(trainingFeatures, trainingEntities), show: trainingResult,
  });
}
