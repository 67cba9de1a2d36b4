// A call's SIP messages (GET /admin/sip-messages, when the connector logs them) drawn as a
// ladder: the peer on the left, this server on the right, one arrow a message with its
// first line and time; the full (redacted) messages below.

import { adminGet } from "../api.js";
import { h } from "../ui.js";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 28;

/** The ladder of the call `record` (its VoiceConnectorId and CallId), as an element. */
export async function ladder(record) {
  const { Messages = [], Truncated } = await adminGet("/admin/sip-messages", {
    "voice-connector-id": record.VoiceConnectorId,
    "call-id": record.CallId,
  });
  if (!Messages.length)
    return h("p", { class: "empty" }, "No SIP messages logged for this call (turn on SIP message logs in its voice connector's Logging).");
  const W = 640, left = 120, right = 520;
  const height = 50 + Messages.length * ROW;
  const svg = el("svg", { viewBox: `0 0 ${W} ${height}`, role: "img", class: "ladder", "aria-label": `SIP ladder of call ${record.CallId}` });
  const peer = Messages[0].Remote;
  svg.append(
    text(left, 16, peer, "end-label"),
    text(right, 16, "voice-connector", "end-label"),
    el("line", { x1: left, y1: 24, x2: left, y2: height - 4, class: "lifeline" }),
    el("line", { x1: right, y1: 24, x2: right, y2: height - 4, class: "lifeline" }),
  );
  const t0 = Date.parse(Messages[0].Timestamp);
  Messages.forEach((m, i) => {
    const y = 44 + i * ROW;
    const inbound = m.Direction === "Inbound";
    const [x1, x2] = inbound ? [left, right] : [right, left];
    const first = (m.Message || "").split("\r\n")[0].split("\n")[0];
    const label = first.startsWith("SIP/2.0 ") ? first.slice(8) : first.split(" ")[0];
    svg.append(
      el("line", { x1, y1: y, x2, y2: y, class: inbound ? "arrow in" : "arrow out" }),
      el("polygon", { points: head(x2, y, inbound ? 1 : -1), class: "arrowhead" }),
      text((left + right) / 2, y - 5, label, "msg"),
      text(4, y + 4, `+${((Date.parse(m.Timestamp) - t0) / 1000).toFixed(3)} s`, "time"),
    );
  });
  return h(
    "div",
    { class: "ladder-box" },
    h("h4", {}, `SIP messages of call ${record.CallId} (${Messages[0].Transport || ""})`),
    svg,
    Truncated && h("p", {}, "Only the first messages are shown."),
    h("details", {}, h("summary", {}, "Messages as logged"), Messages.map((m) => h("pre", {}, `${m.Timestamp} ${m.Direction} ${m.Remote}\n${m.Message}`))),
  );
}


function el(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function text(x, y, s, cls) {
  const t = el("text", { x, y, class: cls });
  t.textContent = s;
  return t;
}

/** The arrowhead at (x, y) pointing right (dir 1) or left (-1). */
function head(x, y, dir) {
  const b = x - dir * 8;
  return `${x},${y} ${b},${y - 4} ${b},${y + 4}`;
}
