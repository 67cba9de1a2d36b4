// Live calls (GET /admin/calls), polled every second while the page is open: each SIP leg
// with its meeting and attendee or its bridge, codec, SRTP suite, loss, jitter and speaking
// level; a Hang up button per call (DELETE /admin/calls/{callId}: a BYE whose Reason names
// the operator). Rows are updated in place, so keyboard focus stays where it was.

import { adminGet, adminCall, describeError } from "../api.js";
import { h, field, actionButton } from "../ui.js";

const POLL_MS = 1000;
/** The level meter's range, in dBov: quieter than this shows as empty. */
const FLOOR_DB = -60;

const COLUMNS = ["Call", "In", "From → To", "Codec", "SRTP", "Loss", "Jitter", "Level", "Up for", ""];

export async function callsPage(root, _params, _go, signal) {
  const filters = [
    field({ label: "Voice connector ID", name: "voice-connector-id", hint: "Only this connector's calls" }),
    field({ label: "Meeting ID", name: "meeting-id", hint: "Only this meeting's calls" }),
  ];
  const filterForm = h("form", { class: "card filters", "aria-label": "Filter live calls" }, filters);
  filterForm.addEventListener("submit", (ev) => ev.preventDefault());
  const status = h("p", { role: "status", class: "live-status" }, "Loading live calls…");
  const done = h("p", { role: "status", class: "hung-up" });
  const error = h("p", { class: "form-error", role: "alert" });
  const body = h("tbody");
  const grid = h("table", { class: "calls", "aria-label": "Live calls" },
    h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
    body,
  );
  root.append(h("h2", {}, "Live calls"), filterForm, status, done, error, grid);
  const rows = new Map();

  const hangUp = async (c) => {
    await adminCall("DELETE", `/admin/calls/${encodeURIComponent(c.CallId)}`);
    done.textContent = `Hung up the call from ${c.From} (${c.CallId}).`;
    root.querySelector("h2")?.focus({ preventScroll: true });
  };

  while (!signal.aborted) {
    const query = Object.fromEntries(filters.map((f) => [f.name, f.input.value.trim()]));
    try {
      const { Calls = [], Truncated } = await adminGet("/admin/calls", query);
      if (signal.aborted) break;
      error.textContent = "";
      const seen = new Set();
      for (const c of Calls) {
        seen.add(c.CallId);
        let row = rows.get(c.CallId);
        if (!row) {
          row = newRow(c, hangUp);
          rows.set(c.CallId, row);
          body.append(row.tr);
        }
        fill(row, c);
      }
      for (const [id, row] of rows) {
        if (!seen.has(id)) {
          row.tr.remove();
          rows.delete(id);
        }
      }
      status.textContent =
        `${Calls.length} live call${Calls.length === 1 ? "" : "s"}${Truncated ? " (only the first are listed)" : ""}` +
        ` at ${new Date().toLocaleTimeString()}.`;
    } catch (e) {
      if (signal.aborted) break;
      error.textContent = describeError(e).text;
    }
    await sleep(POLL_MS, signal);
  }
}

function newRow(c, hangUp) {
  const cells = COLUMNS.slice(0, -1).map(() => h("td"));
  const meter = h("meter", { min: FLOOR_DB, max: 0, low: -40, high: -10, optimum: -20, value: FLOOR_DB, "aria-label": `Speaking level of ${c.From}` });
  const level = h("span", { class: "db" });
  cells[7].append(meter, " ", level);
  const button = actionButton(`Hang up ${c.From}`, () => hangUp(c), { class: "danger" });
  const tr = h("tr", { "data-call-id": c.CallId }, cells, h("td", {}, button));
  return { tr, cells, meter, level };
}

function fill(row, c) {
  const set = (i, text) => {
    if (row.cells[i].textContent !== text) row.cells[i].textContent = text;
  };
  set(0, c.CallId);
  set(1, c.Kind === "meeting" ? `meeting ${c.MeetingId} · attendee ${c.AttendeeId}` : `${c.Kind} · connector ${c.VoiceConnectorId}`);
  set(2, `${c.From} → ${c.To}`);
  set(3, c.Codec || "—");
  set(4, c.SrtpSuite || "none");
  set(5, c.LossPercent === undefined ? "—" : `${c.LossPercent}% (${c.PacketsLost} of ${c.PacketsReceived + c.PacketsLost})`);
  set(6, c.JitterMs === undefined ? "—" : `${c.JitterMs} ms`);
  const db = c.LevelDbov ?? null;
  row.meter.value = db === null ? FLOOR_DB : Math.max(FLOOR_DB, db);
  row.level.textContent = db === null ? "no level yet" : `${db} dBov`;
  row.tr.dataset.level = db === null ? "" : String(db);
  set(8, `${duration(c.DurationSeconds)}${c.State === "Held" ? " (on hold)" : ""}`);
}

function duration(s) {
  const m = Math.floor(s / 60);
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
