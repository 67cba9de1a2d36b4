// The console's shell: sign-in, the navigation, and a hash router that renders one page at
// a time into <main>.

import { ListVoiceConnectorsCommand } from "@aws-sdk/client-chime-sdk-voice";
import { session, saveSession, signOut, sdk, describeError } from "./api.js";
import { h, field, form, errorBox } from "./ui.js";
import { listPage, detailPage } from "./pages/connectors.js";
import { numbersPage } from "./pages/numbers.js";
import { meetingsPage, meetingPage } from "./pages/meetings.js";
import { recordsPage } from "./pages/records.js";
import { carriersPage, carrierPage } from "./pages/carriers.js";
import { chartsPage } from "./pages/charts.js";
import { callsPage } from "./pages/calls.js";

const PAGES = [
  ["Voice connectors", "#/connectors"],
  ["Phone numbers", "#/numbers"],
  ["Meetings", "#/meetings"],
  ["Live calls", "#/calls"],
  ["Call records", "#/records"],
  ["Carriers", "#/carriers"],
  ["Charts", "#/charts"],
];

const ROUTES = [
  [/^#\/connectors\/([\w-]+)$/, detailPage],
  [/^#\/connectors$/, listPage],
  [/^#\/numbers$/, numbersPage],
  [/^#\/meetings\/([\w-]+)$/, meetingPage],
  [/^#\/meetings$/, meetingsPage],
  [/^#\/calls$/, callsPage],
  [/^#\/records$/, recordsPage],
  [/^#\/carriers\/([^/]+)$/, carrierPage],
  [/^#\/carriers$/, carriersPage],
  [/^#\/charts$/, chartsPage],
];

/** Pages that keep polling while open: drawn at once, not awaited. */
const LIVE = new Set([chartsPage, callsPage]);

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let current = null;

/** Navigates to `hash`; with `force`, renders it again when it is the current one. */
function go(hash, force = false) {
  if (location.hash === hash) {
    if (force) render();
  } else {
    location.hash = hash;
  }
}

async function render() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  if (!session()) return signIn();
  drawNav();
  const hash = location.hash || "#/connectors";
  const route = ROUTES.find(([rx]) => rx.test(hash));
  const page = h("div", { class: "page" });
  main.replaceChildren(h("p", { role: "status", class: "loading" }, "Loading…"));
  if (!route) {
    main.replaceChildren(h("h2", {}, "Not found"), h("p", {}, h("a", { href: "#/connectors" }, "Voice connectors")));
    return;
  }
  const [rx, fn] = route;
  const id = rx.exec(hash)[1];
  try {
    const done = fn(page, { id }, go, controller.signal);
    if (!LIVE.has(fn)) await done;
  } catch (e) {
    if (controller.signal.aborted) return;
    if (!page.querySelector("h2")) page.prepend(h("h2", {}, PAGES.find(([, href]) => hash.startsWith(href))?.[0] || "Error"));
    page.append(errorBox(e));
  }
  if (controller.signal.aborted) return;
  main.replaceChildren(page);
  const heading = page.querySelector("h2");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
    document.title = `${heading.textContent} · Voice Connector`;
  }
}

function drawNav() {
  const hash = location.hash || "#/connectors";
  nav.replaceChildren(
    h("ul", {},
      PAGES.map(([text, href]) =>
        h("li", {}, h("a", { href, "aria-current": hash.startsWith(href) ? "page" : undefined }, text)),
      ),
    ),
    h("button", { type: "button", class: "signout", onclick: () => { signOut(); render(); } }, "Sign out"),
  );
}

function signIn() {
  nav.replaceChildren();
  document.title = "Sign in · Voice Connector";
  const f = form({
    title: "Sign in",
    submit: "Sign in",
    fields: [
      field({ label: "Access key ID", name: "accessKeyId", required: true, autocomplete: "username" }),
      field({ label: "Secret access key", name: "secretAccessKey", type: "password", required: true, autocomplete: "current-password" }),
      field({ label: "Region", name: "region", value: "us-east-1", required: true }),
    ],
    extra: h("p", { class: "hint" }, "The keys stay in this tab's session storage and sign every request (SigV4)."),
    onsubmit: async (v) => {
      try {
        await sdk(v).voice.send(new ListVoiceConnectorsCommand({ MaxResults: 1 }));
      } catch (e) {
        const err = describeError(e);
        throw Object.assign(new Error(`Sign-in failed. ${err.message}`), { name: err.code });
      }
      saveSession(v);
      render();
    },
  });
  main.replaceChildren(h("div", { class: "signin" }, f));
  f.fields.accessKeyId.input.focus();
}

// The skip link moves focus to the content without touching the route in the hash.
document.querySelector(".skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", render);
render();
