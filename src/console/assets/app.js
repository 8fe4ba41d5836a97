// The console's entry point: a hash router over five pages. Each page module exports
// `render(main, params, signal)`; when its promise settles, `main` gets data-ready="true" (what
// the browser tests wait for), whether its requests succeeded or not.

import { forgetToken, onTokenChange, token } from "./api.js";
import { errorBox, fill } from "./dom.js";

const PAGES = {
  tables: () => import("./tables.js"),
  table: () => import("./table.js"),
  registry: () => import("./registry.js"),
  try: () => import("./try.js"),
  server: () => import("./server.js"),
};

// Which page a hash shows: #/tables, #/tables/{group}/{name}, #/registry, #/try, #/server.
function route(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "tables" && parts.length === 3) return { page: "table", nav: "tables", params: { group: parts[1], name: parts[2] } };
  if (["registry", "try", "server"].includes(parts[0])) return { page: parts[0], nav: parts[0], params: {} };
  return { page: "tables", nav: "tables", params: {} };
}

const TITLES = { tables: "Tables", registry: "Registry", try: "Try it", server: "Server" };

let current = null;

async function show() {
  const { page, nav, params } = route(location.hash);
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  const main = document.getElementById("main");
  main.dataset.page = page;
  document.title = `${page === "table" ? `${params.group}/${params.name}` : TITLES[page]} · featurestore`;
  main.removeAttribute("data-ready");
  for (const link of document.querySelectorAll("nav a[data-nav]")) {
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    const module = await PAGES[page]();
    await module.render(main, params, controller.signal);
  } catch (error) {
    if (controller.signal.aborted) return;
    fill(main, errorBox(error));
  }
  if (!controller.signal.aborted) main.dataset.ready = "true";
}

function showAuthState() {
  document.getElementById("auth-state").hidden = !token();
}

document.getElementById("forget-token").addEventListener("click", () => {
  forgetToken();
  show();
});
onTokenChange(showAuthState);
showAuthState();
window.addEventListener("hashchange", show);
show();
