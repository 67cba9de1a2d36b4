// Carriers (GET /admin/carriers): their addresses, routing and up/down state; adding one
// (POST /admin/carriers), changing one (PUT /admin/carriers/{name}) and removing one
// (DELETE), signed like every call. A password is sent, never shown.

import { adminGet, adminCall } from "../api.js";
import { add, h, field, form, table, actionButton, lines } from "../ui.js";

const TRANSPORTS = [["udp", "UDP"], ["tcp", "TCP"], ["tls", "TLS"]];

/** The fields both forms share, filled from `c` (a listed carrier) when given. */
function carrierFields(c) {
  return [
    field({ label: "Addresses (HOST:PORT, one a line, tried in order)", name: "Addresses", type: "textarea", value: c ? c.Addresses.join("\n") : "", required: !c }),
    field({ label: "Transport", name: "Transport", type: "select", options: TRANSPORTS, value: c?.Transport || "udp" }),
    field({ label: "E.164 prefixes served (one a line; none serves every number)", name: "Prefixes", type: "textarea", value: c ? c.Prefixes.join("\n") : "" }),
    field({ label: "Priority (lower is tried first)", name: "Priority", type: "number", min: 0, max: 1000, value: c ? c.Priority : 1 }),
    field({ label: "Weight (share among equal priorities)", name: "Weight", type: "number", min: 1, max: 1000, value: c ? c.Weight : 1 }),
    field({ label: "Username for the carrier's challenges", name: "Username", autocomplete: "off" }),
    field({ label: c ? "New password (empty keeps it)" : "Password", name: "Password", type: "password", autocomplete: "new-password" }),
  ];
}

/** The JSON body of a form's values: lists split, numbers as numbers, empty left out. */
function body(v) {
  const out = {};
  for (const [k, val] of Object.entries(v)) {
    if (val === "" || val === undefined) continue;
    if (k === "Addresses" || k === "Prefixes") out[k] = lines(val);
    else if (k === "Priority" || k === "Weight") out[k] = Number(val);
    else out[k] = val;
  }
  return out;
}

export async function carriersPage(root, _params, go) {
  const { Carriers = [] } = await adminGet("/admin/carriers");
  const reload = () => go("#/carriers", true);
  add(root,
    h("h2", {}, "Carriers"),
    table(
      [
        ["Name", (c) => c.Name],
        ["State", (c) => h("span", { class: `state state-${c.Status}` }, c.Status)],
        ["Last OPTIONS", (c) => (c.LastOptions ? `${new Date(c.LastOptions).toLocaleString()} (${c.LastStatusCode ?? "timeout"})` : "never")],
        ["Addresses", (c) => `${c.Addresses.join(", ")} (${c.Transport})`],
        ["Prefixes", (c) => (c.Prefixes.length ? c.Prefixes.join(", ") : "all")],
        ["Priority / weight", (c) => `${c.Priority} / ${c.Weight}`],
        ["", (c) => h("span", { class: "row-actions" },
          h("a", { href: `#/carriers/${encodeURIComponent(c.Name)}` }, `Edit ${c.Name}`),
          actionButton(`Remove ${c.Name}`, async () => {
            if (!confirm(`Remove carrier ${c.Name}? Calls are no longer routed to it.`)) return;
            await adminCall("DELETE", `/admin/carriers/${encodeURIComponent(c.Name)}`);
            reload();
          }, { class: "danger" }),
        )],
      ],
      Carriers,
      "No carriers yet.",
    ),
    form({
      title: "Add a carrier",
      submit: "Add carrier",
      fields: [field({ label: "Name (letters, digits, '.', '_' or '-')", name: "Name", required: true, maxlength: 64 }), ...carrierFields()],
      onsubmit: async (v) => {
        await adminCall("POST", "/admin/carriers", {}, body(v));
        reload();
      },
    }),
  );
}

export async function carrierPage(root, { id }, go) {
  const name = decodeURIComponent(id);
  const { Carriers = [] } = await adminGet("/admin/carriers");
  const c = Carriers.find((x) => x.Name === name);
  add(root, h("p", {}, h("a", { href: "#/carriers" }, "← Carriers")), h("h2", {}, `Carrier ${name}`));
  if (!c) {
    add(root, h("p", { role: "alert" }, `No carrier named ${name}.`));
    return;
  }
  const clear = field({ label: "Drop the username and password (and registration)", name: "ClearCredentials", type: "checkbox" });
  add(root, form({
    title: `Update carrier ${name}`,
    submit: "Save carrier",
    fields: [...carrierFields(c), clear],
    onsubmit: async (v) => {
      const b = body(v);
      if (!v.ClearCredentials) delete b.ClearCredentials;
      await adminCall("PUT", `/admin/carriers/${encodeURIComponent(name)}`, {}, b);
      go("#/carriers");
    },
  }));
}
