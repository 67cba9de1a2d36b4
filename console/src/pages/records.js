// Call records from GET /admin/call-records: filtered by connector, meeting and attendee on
// the server, by number, status and time here; exported as CSV.

import { adminGet } from "../api.js";
import { h, field, form, table, actionButton } from "../ui.js";
import { ladder } from "./ladder.js";

const COLUMNS = [
  "TransactionId", "StartTime", "EndTime", "Status", "StatusCode", "Reason", "VoiceConnectorId",
  "SourcePhoneNumber", "DestinationPhoneNumber", "MeetingId", "AttendeeId", "Codec", "Transport", "CallId",
];
/** Store pages read at most for one search (100 records each). */
const MAX_PAGES = 20;

export async function recordsPage(root) {
  const results = h("div", { class: "results", "aria-live": "polite" });
  const sip = h("div", { class: "sip" });
  let shown = [];
  const exportButton = h("button", { type: "button", disabled: true }, "Export CSV");
  exportButton.addEventListener("click", () => download(shown));
  const search = form({
    title: "Filter",
    submit: "Search",
    fields: [
      field({ label: "Voice connector ID", name: "voice-connector-id" }),
      field({ label: "Meeting ID", name: "meeting-id" }),
      field({ label: "Phone number (from or to)", name: "number" }),
      field({ label: "Status", name: "status", type: "select", options: [["", "Any"], ["Completed", "Completed"], ["Cancelled", "Cancelled"], ["Refused", "Refused"], ["Failed", "Failed"]] }),
      field({ label: "From (local time)", name: "from", type: "datetime-local" }),
      field({ label: "To (local time)", name: "to", type: "datetime-local" }),
    ],
    onsubmit: async (v) => {
      const query = { "voice-connector-id": v["voice-connector-id"], "meeting-id": v["meeting-id"], "max-results": 100 };
      const all = [];
      let truncated = false;
      for (let i = 0; ; i++) {
        const page = await adminGet("/admin/call-records", query);
        all.push(...(page.CallRecords || []));
        if (!page.NextToken) break;
        if (i + 1 >= MAX_PAGES) {
          truncated = true;
          break;
        }
        query["next-token"] = page.NextToken;
      }
      shown = all.filter(keep(v)).reverse();
      exportButton.disabled = shown.length === 0;
      results.replaceChildren(
        h("p", { role: "status" }, `${shown.length} call record${shown.length === 1 ? "" : "s"}${truncated ? " (the oldest were not read)" : ""}.`),
        table(
          [
            ["Start", (r) => (r.StartTime ? new Date(r.StartTime).toLocaleString() : "")],
            ["Status", (r) => `${r.Status} ${r.StatusCode ?? ""}`],
            ["Reason", (r) => r.Reason],
            ["From", (r) => r.SourcePhoneNumber],
            ["To", (r) => r.DestinationPhoneNumber],
            ["Connector", (r) => h("code", {}, r.VoiceConnectorId || "")],
            ["Codec", (r) => r.Codec],
            ["Transport", (r) => r.Transport],
            ["Seconds", (r) => (r.StartTime && r.EndTime ? ((Date.parse(r.EndTime) - Date.parse(r.StartTime)) / 1000).toFixed(1) : "")],
            ["", (r) => r.CallId && actionButton("SIP messages", async () => sip.replaceChildren(await ladder(r)))],
          ],
          shown,
          "No call records match.",
        ),
      );
    },
  });
  root.append(h("h2", {}, "Call records"), search, h("p", {}, exportButton), results, sip);
  await search.run();
}

/** The filters applied here: number, status and time. */
function keep(v) {
  const from = v.from ? Date.parse(v.from) : -Infinity;
  const to = v.to ? Date.parse(v.to) : Infinity;
  return (r) => {
    const t = Date.parse(r.StartTime || "");
    return (
      (!v.number || [r.SourcePhoneNumber, r.DestinationPhoneNumber].some((n) => (n || "").includes(v.number))) &&
      (!v.status || r.Status === v.status) &&
      (Number.isNaN(t) || (t >= from && t <= to))
    );
  };
}

/** RFC 4180 CSV of `records` (COLUMNS, then the media counters flattened). */
export function toCsv(records) {
  const media = [...new Set(records.flatMap((r) => Object.keys(r.Media || {})))].sort();
  const cell = (v) => {
    const s = v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const head = [...COLUMNS, ...media.map((m) => `Media.${m}`)];
  const rows = records.map((r) => [...COLUMNS.map((c) => r[c]), ...media.map((m) => r.Media?.[m])].map(cell).join(","));
  return [head.join(","), ...rows].join("\r\n") + "\r\n";
}

function download(records) {
  const blob = new Blob([toCsv(records)], { type: "text/csv" });
  const a = h("a", { href: URL.createObjectURL(blob), download: "call-records.csv" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
