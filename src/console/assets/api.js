// The one way the console talks to the server: JSON over fetch to this origin, the bearer
// token when one was given, and the token dialog when the server answers 401. The token
// lives in sessionStorage only, so it is gone when the browser session ends.

const TOKEN_KEY = "featurestore.token";

/** The token of this browser session, if one was entered. */
export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** Forgets the token (the "sign out" link). */
export function forgetToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage unavailable: nothing was kept.
  }
  notify();
}

const listeners = new Set();

/** Calls `listener` whenever the token is set or forgotten. */
export function onTokenChange(listener) {
  listeners.add(listener);
}

function notify() {
  for (const listener of listeners) listener(token());
}

/** A failed request, shaped like the API's problem+json. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || `http_${status}`;
    this.detail = problem.detail || problem.title || `HTTP ${status}`;
    this.problem = problem;
  }
}

// One dialog for all requests that hit a 401 at the same time.
let pendingToken = null;

function askForToken(message) {
  if (pendingToken) return pendingToken;
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  const submit = document.getElementById("token-submit");
  const cancel = document.getElementById("token-cancel");
  const note = document.getElementById("token-message");
  pendingToken = new Promise((resolve) => {
    note.textContent = message;
    input.value = "";
    const finish = (value) => {
      submit.removeEventListener("click", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      pendingToken = null;
      resolve(value);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) {
        input.focus();
        return;
      }
      try {
        sessionStorage.setItem(TOKEN_KEY, value);
      } catch {
        // Without storage the token still works for this page's requests below.
      }
      finish(value);
      notify();
    };
    const onCancel = (event) => {
      event.preventDefault();
      finish(null);
    };
    submit.addEventListener("click", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    input.focus();
  });
  return pendingToken;
}

async function send(method, path, body, bearer) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
}

async function problemOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { title: response.statusText, detail: text.slice(0, 300) };
  }
}

/**
 * Sends a request and answers its JSON body; a non-2xx answer throws an ApiError carrying the
 * problem's `code`. A 401 opens the token dialog and retries with the token entered (the
 * dialog comes back with the server's message while the token is refused).
 */
export async function request(method, path, body) {
  let bearer = token();
  for (;;) {
    const response = await send(method, path, body, bearer);
    if (response.status === 401) {
      const problem = await problemOf(response);
      const message = bearer
        ? `The server refused this token: ${problem.detail || "unknown token"}`
        : "This server requires a bearer token. Ask its operator for one (they create it with featurestore token create).";
      const entered = await askForToken(message);
      if (!entered) throw new ApiError(401, problem);
      bearer = entered;
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    if (response.status === 204) return null;
    return response.json();
  }
}

/** GET `path` as JSON. */
export const get = (path) => request("GET", path);

/** POST `body` as JSON to `path`. */
export const post = (path, body) => request("POST", path, body);

/** Single-quotes `text` for a POSIX shell. */
function shellQuote(text) {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The curl command that sends the same request: what to paste into a terminal or a script.
 * The token itself is never shown, only where it goes.
 */
export function curl(method, path, body) {
  const lines = [`curl -s -X ${method} ${shellQuote(location.origin + path)}`];
  if (body !== undefined) lines.push("-H 'content-type: application/json'");
  if (token()) lines.push("-H 'Authorization: Bearer …'");
  if (body !== undefined) lines.push(`-d ${shellQuote(JSON.stringify(body))}`);
  return lines.join(" \\\n  ");
}

/** `/features/{group}/{name}` with both parts escaped. */
export function tablePath(group, name, suffix = "") {
  return `/features/${encodeURIComponent(group)}/${encodeURIComponent(name)}${suffix}`;
}
