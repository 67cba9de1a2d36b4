// Charts from /metrics (Prometheus text), sampled every two seconds while the page is open:
// calls per second, active legs, refusals by status, and inbound packet loss.

import { h } from "../ui.js";

const SAMPLE_MS = 2000;
/** Samples kept per chart (two minutes). */
const KEEP = 60;
const SVG = "http://www.w3.org/2000/svg";

/** `{name: {labels: value}}` from Prometheus text exposition. */
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    (out[m[1]] ||= {})[m[2] || ""] = Number(m[3]);
  }
  return out;
}

const sum = (series) => Object.values(series || {}).reduce((a, b) => a + b, 0);
const pick = (series, label) => (series || {})[label] || 0;

export async function chartsPage(root, _params, _go, signal) {
  const charts = {
    cps: chart("Calls per second", "calls/s"),
    legs: chart("Active legs", "legs"),
    refused: chart("Refusals per second by status", "refusals/s"),
    loss: chart("Inbound packet loss", "%"),
  };
  const status = h("p", { role: "status" }, "Sampling /metrics…");
  root.append(h("h2", {}, "Charts"), status, ...Object.values(charts).map((c) => c.el));
  const history = { cps: [], legs: [], loss: [], refused: {} };
  let prev = null;
  while (!signal.aborted) {
    try {
      const resp = await fetch("/metrics", { signal });
      const now = parseMetrics(await resp.text());
      const t = Date.now();
      if (prev) {
        const dt = (t - prev.t) / 1000;
        const rate = (name) => Math.max(0, (sum(now[name]) - sum(prev.m[name])) / dt);
        push(history.cps, rate("vc_calls_attempted_total"));
        push(history.legs, sum(now.vc_active_legs));
        const lost = sum(now.vc_rtp_packets_lost_total) - sum(prev.m.vc_rtp_packets_lost_total);
        const got = pick(now.vc_rtp_packets_total, '{direction="in"}') - pick(prev.m.vc_rtp_packets_total, '{direction="in"}');
        push(history.loss, got + lost > 0 ? (100 * Math.max(0, lost)) / (got + lost) : 0);
        const failed = now.vc_calls_failed_total || {};
        for (const label of Object.keys(failed)) {
          const code = /status="(\d+)"/.exec(label)?.[1] || label;
          const d = Math.max(0, (failed[label] - pick(prev.m.vc_calls_failed_total, label)) / dt);
          push((history.refused[code] ||= []), d);
        }
        charts.cps.draw({ all: history.cps });
        charts.legs.draw({ all: history.legs });
        charts.loss.draw({ in: history.loss });
        charts.refused.draw(history.refused);
        status.textContent = `Last sample ${new Date(t).toLocaleTimeString()}.`;
      }
      prev = { t, m: now };
    } catch (e) {
      if (signal.aborted) return;
      status.textContent = `Reading /metrics failed: ${e.message}`;
    }
    await sleep(SAMPLE_MS, signal);
  }
}

function push(list, v) {
  list.push(v);
  if (list.length > KEEP) list.shift();
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** An SVG line chart: `.draw({series: [values]})` redraws it, one line per series. */
function chart(title, unit) {
  const W = 600, H = 160, P = 30;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const legend = h("p", { class: "legend" });
  const el = h("figure", { class: "chart" }, h("figcaption", {}, title), svg, legend);
  const draw = (series) => {
    const all = Object.values(series).flat();
    const max = Math.max(1e-9, ...all);
    svg.replaceChildren();
    const axis = document.createElementNS(SVG, "text");
    axis.setAttribute("x", 2);
    axis.setAttribute("y", 12);
    axis.textContent = `${fmt(max)} ${unit}`;
    svg.append(axis, line(P, H - P, W, H - P, "axis"));
    Object.entries(series).forEach(([, values], i) => {
      const pts = values.map((v, j) => `${P + (j * (W - P)) / (KEEP - 1)},${H - P - (v / max) * (H - 2 * P)}`);
      const path = document.createElementNS(SVG, "polyline");
      path.setAttribute("points", pts.join(" "));
      path.setAttribute("class", `series s${i % 6}`);
      svg.append(path);
    });
    if (!Object.keys(series).length) return legend.replaceChildren(h("span", {}, "None so far."));
    legend.replaceChildren(
      ...Object.entries(series).map(([name, values], i) =>
        h("span", { class: `key s${i % 6}` }, `${name === "all" || name === "in" ? "now" : name}: ${fmt(values.at(-1) ?? 0)} ${unit}`),
      ),
    );
  };
  return { el, draw };
}

function line(x1, y1, x2, y2, cls) {
  const l = document.createElementNS(SVG, "line");
  for (const [k, v] of Object.entries({ x1, y1, x2, y2, class: cls })) l.setAttribute(k, v);
  return l;
}

function fmt(v) {
  return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2);
}
