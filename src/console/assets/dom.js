// Small DOM helpers shared by every page: element builders (HTML and SVG), the error box
// that shows an API problem, and the section scaffolding the pages share.

const SVG_NS = "http://www.w3.org/2000/svg";

// Sets attributes and properties: `on*` functions become listeners, `dataset` and
// boolean `true` become attributes, null/undefined/false are skipped.
function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "value" && "value" in el) {
      el.value = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("td", {"data-field": "rows"}, "12"). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  return append(el, children);
}

/** An SVG element, same calling convention as `h`. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  return append(el, children);
}

/**
 * The box shown when a request fails: the API's `code` and message (`detail`), so what the
 * console shows is what a curl would have said.
 */
export function errorBox(error) {
  const code = (error && error.code) || "request_failed";
  const message = (error && (error.detail || error.message)) || String(error);
  return h("div", { class: "error", "data-error": code, role: "alert" },
    h("strong", {}, code), " ", h("span", {}, message));
}

/** A titled section with an optional note beside the title; returns [section, body]. */
export function section(id, title, note) {
  const body = h("div", { class: "section-body" });
  const el = h("section", { id, class: "card" },
    h("div", { class: "section-head" }, h("h2", {}, title), note ? h("span", { class: "muted" }, note) : null),
    body);
  return [el, body];
}

/** A table inside a horizontally scrolling wrapper, so wide tables never widen the page. */
export function scrollTable(table) {
  return h("div", { class: "scroll" }, table);
}

/** Replaces the content of `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A paragraph shown while a section loads. */
export function loading(text = "Loading…") {
  return h("p", { class: "muted loading" }, text);
}
