// DOM helpers: elements, labelled fields, tables, and where errors are shown. Nothing here
// sets inline styles or HTML strings, so the page runs under a CSP of 'self' alone.

import { describeError } from "./api.js";

/** An element: h("button", {class: "x", onclick: f}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

/** Appends `children` to `el`, skipping null, undefined and false (so `cond && child`
 * works), text for anything that is not a node. */
export function add(el, ...children) {
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let seq = 0;
/** A unique element id with `prefix`. */
export function uid(prefix) {
  seq += 1;
  return `${prefix}-${seq}`;
}

/** A labelled form field: {label, name, type, value, options, hint, ...input attributes}.
 * Returns the wrapper; its `.input` is the control and `.error` where its error goes. */
export function field({ label, name, type = "text", options, hint, value, ...rest }) {
  const id = uid(`f-${name}`);
  const errId = `${id}-error`;
  let input;
  if (type === "select") {
    input = h("select", { id, name, ...rest }, options.map(([v, text]) => h("option", { value: v }, text)));
    if (value !== undefined) input.value = value;
  } else if (type === "textarea") {
    input = h("textarea", { id, name, rows: 3, ...rest });
    input.value = value ?? "";
  } else if (type === "checkbox") {
    input = h("input", { id, name, type, checked: !!value, ...rest });
  } else {
    input = h("input", { id, name, type, value: value ?? "", ...rest });
  }
  input.setAttribute("aria-describedby", errId);
  const error = h("span", { class: "field-error", id: errId, role: "alert", "data-field": name });
  const wrap =
    type === "checkbox"
      ? h("div", { class: "field check" }, input, h("label", { for: id }, label), hint && h("small", {}, hint), error)
      : h("div", { class: "field" }, h("label", { for: id }, label), input, hint && h("small", {}, hint), error);
  wrap.input = input;
  wrap.error = error;
  wrap.name = name;
  return wrap;
}

/** A form of `fields` with a submit button; `onsubmit(values)` runs the API call. An API
 * error naming one of the fields is shown beside it; any other above the button. */
export function form({ title, fields, submit, onsubmit, extra }) {
  const status = h("p", { class: "form-error", role: "alert" });
  const button = h("button", { type: "submit" }, submit);
  const el = h("form", { class: "card", "aria-label": title }, title && h("h3", {}, title), fields, extra, status, button);
  const run = async () => {
    status.textContent = "";
    for (const f of fields) f.error.textContent = "";
    el.classList.remove("has-error");
    const values = {};
    for (const f of fields) values[f.name] = f.input.type === "checkbox" ? f.input.checked : f.input.value.trim();
    button.disabled = true;
    try {
      await onsubmit(values);
    } catch (e) {
      showError(e, fields, status);
      el.classList.add("has-error");
    } finally {
      button.disabled = false;
    }
  };
  el.addEventListener("submit", (ev) => {
    ev.preventDefault();
    run();
  });
  /** Submits the form from code, also before it is in the document. */
  el.run = run;
  el.fields = Object.fromEntries(fields.map((f) => [f.name, f]));
  return el;
}

/** Shows an API error beside the field its message names (the first one named), else in
 * `status`. */
export function showError(e, fields, status) {
  const err = describeError(e);
  const target = fields.find((f) => mentions(err.message, f.name));
  if (target) {
    target.error.textContent = err.text;
    target.input.setAttribute("aria-invalid", "true");
    target.input.focus();
  } else {
    status.textContent = err.text;
  }
}

function mentions(message, name) {
  return new RegExp(`\\b${name}\\b`).test(message);
}

/** A table of `rows` with `columns` [[heading, row => cell], ...]. */
export function table(columns, rows, empty = "None.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map(([head]) => h("th", { scope: "col" }, head)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(r) ?? ""))))),
  );
}

/** A paragraph showing an error as the API wrote it. */
export function errorBox(e) {
  return h("p", { class: "form-error", role: "alert" }, describeError(e).text);
}

/** A button that runs `action` and shows its error after itself. */
export function actionButton(text, action, attrs = {}) {
  const msg = h("span", { class: "form-error", role: "alert" });
  const b = h("button", { type: "button", ...attrs }, text);
  b.addEventListener("click", async () => {
    msg.textContent = "";
    b.disabled = true;
    try {
      await action();
    } catch (e) {
      msg.textContent = describeError(e).text;
    } finally {
      b.disabled = false;
    }
  });
  return h("span", { class: "action" }, b, msg);
}

/** Copies `text` to the clipboard, falling back to selecting it in `input`. */
export async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (input) {
      input.focus();
      input.select();
    }
    return false;
  }
}

/** A read-only text box holding `value`, with a Copy button. */
export function copyBox(label, value, buttonText) {
  const f = field({ label, name: label.replace(/\W+/g, ""), value, readonly: true });
  const note = h("span", { class: "note", role: "status" });
  const b = h("button", { type: "button", class: "copy" }, buttonText);
  b.addEventListener("click", async () => {
    note.textContent = (await copy(value, f.input)) ? "Copied." : "Selected: press Ctrl+C.";
  });
  f.append(b, note);
  return f;
}

/** Lines of a textarea, trimmed, empty ones dropped. */
export function lines(text) {
  return text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean);
}
