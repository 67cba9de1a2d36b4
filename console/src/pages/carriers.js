// Carriers (GET /admin/carriers): their addresses, routing and up/down state.

import { adminGet } from "../api.js";
import { add, h, table } from "../ui.js";

export async function carriersPage(root) {
  const { Carriers = [] } = await adminGet("/admin/carriers");
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
      ],
      Carriers,
      "No carriers (`voice-connector admin carriers add` adds one).",
    ),
  );
}
