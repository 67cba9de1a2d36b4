// Drives the web console in headless Chromium as a person would (typing into labelled
// fields, pressing Enter on buttons), for tests/console/test_console.py.
//
// Protocol: one JSON command a line on stdin, {"id": n, "op": "...", "args": {...}}; one
// JSON answer a line on stdout, {"id": n, "ok": true, "result": ...} or {"id": n, "ok":
// false, "error": "..."}. Environment: CHROMIUM (the browser), CONSOLE_URL (the console's
// address), DOWNLOADS (where downloads land). Everything the page logs as an error, every
// uncaught exception, every failed request and every HTTP answer of 400 or more is kept
// for the `report` command.

import puppeteer from "puppeteer-core";
import readline from "node:readline";
import fs from "node:fs";
import path from "node:path";

const STEP_TIMEOUT_MS = 15000;
const url = process.env.CONSOLE_URL;
const downloads = process.env.DOWNLOADS;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-extensions", "--window-size=1280,800"],
  defaultViewport: { width: 1280, height: 800 },
  protocolTimeout: 60000,
});
const page = await browser.newPage();
page.setDefaultTimeout(STEP_TIMEOUT_MS);
const cdp = await page.createCDPSession();
await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads });

const seen = { consoleErrors: [], pageErrors: [], failedRequests: [], httpErrors: [] };
page.on("console", (m) => {
  if (m.type() === "error") seen.consoleErrors.push({ text: m.text(), url: m.location()?.url || "" });
});
page.on("pageerror", (e) => seen.pageErrors.push(String(e?.message || e)));
page.on("requestfailed", (r) => {
  // A page replaced mid-request aborts its fetches; anything else is a failure.
  if (r.failure()?.errorText !== "net::ERR_ABORTED") seen.failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
});
page.on("response", (r) => {
  if (r.status() >= 400) {
    const u = new URL(r.url());
    seen.httpErrors.push({ method: r.request().method(), path: u.pathname, status: r.status() });
  }
});
page.on("dialog", (d) => d.accept());

// -- helpers ---------------------------------------------------------------------------

const sel = (form, name) => `form[aria-label="${form}"] [name="${name}"]`;

/** Types `values` ({name: value}) into the fields of the form labelled `form`. */
async function fill(form, values) {
  for (const [name, value] of Object.entries(values)) {
    const s = sel(form, name);
    const kind = await page.$eval(s, (el) => (el.tagName === "SELECT" ? "select" : el.type));
    if (kind === "select") {
      await page.select(s, value);
    } else if (kind === "checkbox") {
      if ((await page.$eval(s, (el) => el.checked)) !== !!value) {
        await page.focus(s);
        await page.keyboard.press("Space");
      }
    } else {
      await page.focus(s);
      await page.$eval(s, (el) => el.select?.());
      await page.keyboard.press("Backspace");
      await page.type(s, String(value));
    }
  }
}

/** Presses Enter on the form's submit button and waits until the page was drawn anew or
 * the form shows an error; returns the errors it shows. */
async function submit(form) {
  await page.$$eval("#main > *", (els) => els.forEach((e) => e.setAttribute("data-old", "")));
  await page.focus(`form[aria-label="${form}"] button[type=submit]`);
  await page.keyboard.press("Enter");
  await page.waitForFunction(
    (form) => {
      const f = document.querySelector(`form[aria-label="${form}"]`);
      if (f && f.classList.contains("has-error") && !f.querySelector("button[type=submit]").disabled) return true;
      const p = document.querySelector("#main > .page");
      return p && !p.hasAttribute("data-old");
    },
    {},
    form,
  );
  return formErrors(form);
}

async function formErrors(form) {
  return page.evaluate((form) => {
    const f = document.querySelector(`form[aria-label="${form}"]`);
    if (!f || !f.classList.contains("has-error")) return null;
    const fields = {};
    for (const e of f.querySelectorAll(".field-error")) if (e.textContent) fields[e.dataset.field] = e.textContent;
    return { fields, form: f.querySelector(".form-error").textContent };
  }, form);
}

/** Opens `hash` and waits for its page to be drawn. */
async function open(hash) {
  await page.$$eval("#main > *", (els) => els.forEach((e) => e.setAttribute("data-old", "")));
  await page.evaluate((h) => (location.hash = h), hash);
  try {
    await page.waitForSelector("#main > .page:not([data-old])");
  } catch (e) {
    const shown = await page.$eval("#main", (m) => m.innerText).catch(() => "?");
    throw new Error(`${hash} was not drawn; the page shows: ${shown.slice(0, 2000)}`);
  }
}

/** What the current page shows: its heading, its tables' rows (cell texts) and alerts. */
async function view() {
  return page.evaluate(() => ({
    hash: location.hash,
    heading: document.querySelector("#main h2")?.textContent || "",
    tables: [...document.querySelectorAll("#main table")].map((t) => [...t.querySelectorAll("tr")].map((r) => [...r.children].map((c) => c.textContent.trim()))),
    alerts: [...document.querySelectorAll('#main [role="alert"]')].map((e) => e.textContent).filter(Boolean),
    text: document.querySelector("#main").innerText,
  }));
}

/** Waits up to `ms` for a new file in the downloads folder; its path. */
async function download(before, ms = 10000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const now = fs.readdirSync(downloads).filter((f) => !before.includes(f) && !f.endsWith(".crdownload"));
    if (now.length) return path.join(downloads, now[0]);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("no download arrived");
}

// -- commands --------------------------------------------------------------------------

const ops = {
  async signin({ keyId, secret }) {
    await page.goto(url, { waitUntil: "load" });
    if (await page.$("button.signout")) {
      await page.click("button.signout");
      await page.waitForSelector('form[aria-label="Sign in"]');
    }
    await page.waitForSelector('form[aria-label="Sign in"]');
    await fill("Sign in", { accessKeyId: keyId, secretAccessKey: secret });
    const errors = await submit("Sign in");
    const stored = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: Object.keys(localStorage) }));
    return { errors, signedIn: !!(await page.$("button.signout")), storage: stored };
  },
  async createConnector({ name, encryption }) {
    await open("#/connectors");
    await fill("Create a voice connector", { Name: name, RequireEncryption: encryption });
    const errors = await submit("Create a voice connector");
    return { errors, ...(await view()) };
  },
  /** Fills the form labelled `form` with `values` and submits it. */
  async form({ form, values }) {
    const errors = await submit_with(form, values);
    return { errors, ...(await view()) };
  },
  /** Presses Enter on the button whose text is `text` (a confirm() is accepted) and
   * waits for the page to be drawn anew. */
  async press({ text }) {
    await page.$$eval("#main > *", (els) => els.forEach((e) => e.setAttribute("data-old", "")));
    const [button] = await page.$$(`xpath/.//button[normalize-space()='${text}']`);
    if (!button) throw new Error(`no button ${text}`);
    await button.focus();
    await page.keyboard.press("Enter");
    // Drawn anew, or the action's error shown beside its button.
    await page.waitForFunction(
      (b) => document.querySelector("#main > .page:not([data-old])") || (b.nextElementSibling?.textContent && !b.disabled),
      {},
      button,
    );
    const error = await button.evaluate((b) => (b.isConnected ? b.nextElementSibling?.textContent || null : null));
    return { error, ...(await view()) };
  },
  async createMeeting({ externalId }) {
    await open("#/meetings");
    await fill("Create a meeting", { ExternalMeetingId: externalId });
    const errors = await submit("Create a meeting");
    return { errors, ...(await view()) };
  },
  async createAttendee({ userId, connectorHost }) {
    await fill("Add an attendee", { ExternalUserId: userId, Connector: connectorHost });
    await page.focus('form[aria-label="Add an attendee"] button[type=submit]');
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll(".joined input[readonly]").length === 2 || document.querySelector('form[aria-label="Add an attendee"].has-error'));
    const boxes = await page.$$eval(".joined input[readonly]", (els) => els.map((e) => e.value));
    return { errors: await formErrors("Add an attendee"), joinToken: boxes[0], sipUri: boxes[1] };
  },
  async records({ filter }) {
    if ((await page.evaluate(() => location.hash)) !== "#/records") await open("#/records");
    await page.waitForSelector('.results p[role="status"]');
    await page.$eval(".results", (r) => r.replaceChildren());
    await fill("Filter", filter);
    await page.focus('form[aria-label="Filter"] button[type=submit]');
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector('.results p[role="status"]') || document.querySelector('form[aria-label="Filter"].has-error'));
    const before = fs.readdirSync(downloads);
    const result = { errors: await formErrors("Filter"), ...(await view()) };
    if (await page.$eval("button:not([type=submit])", () => true).catch(() => false)) {
      const [exp] = await page.$$("xpath/.//button[normalize-space()='Export CSV']");
      if (!(await exp.evaluate((b) => b.disabled))) {
        await exp.focus();
        await page.keyboard.press("Enter");
        result.csv = fs.readFileSync(await download(before), "utf8");
      }
    }
    return result;
  },
  /** Presses the first "SIP messages" button of the call records and reads the ladder. */
  async ladder() {
    const [button] = await page.$$("xpath/.//button[normalize-space()='SIP messages']");
    await button.focus();
    await page.keyboard.press("Enter");
    await page.waitForFunction((b) => document.querySelector(".sip > *") || (b.nextElementSibling?.textContent && !b.disabled), {}, button);
    return page.evaluate(() => ({
      arrows: [...document.querySelectorAll(".ladder text.msg")].map((t) => t.textContent),
      ends: [...document.querySelectorAll(".ladder text.end-label")].map((t) => t.textContent),
      text: document.querySelector(".sip").innerText,
      error: document.querySelector(".results .action .form-error")?.textContent || null,
    }));
  },
  async open({ hash }) {
    await open(hash);
    return view();
  },
  async charts({ samples }) {
    await open("#/charts");
    await page.waitForFunction(
      (n) => {
        const charts = [...document.querySelectorAll(".chart")];
        return charts.length === 4 && charts.every((c) => c.querySelector(".legend").textContent) && charts[0].querySelector("polyline")?.points.length >= n;
      },
      { timeout: 5000 * samples + 5000 },
      samples,
    );
    return page.$$eval(".chart", (charts) => charts.map((c) => ({ title: c.querySelector("figcaption").textContent, legend: c.querySelector(".legend").textContent, points: c.querySelector("polyline")?.points.length || 0 })));
  },
  /** Opens the live calls page (unless open) and waits until the call from `from` shows
   * a codec and a speaking level above `minDb` dBov; every row's cells and level. */
  async liveCall({ from, minDb }) {
    if ((await page.evaluate(() => location.hash)) !== "#/calls") await open("#/calls");
    const shows = (from, minDb) =>
      [...document.querySelectorAll("table.calls tbody tr")].some(
        (tr) => tr.children[2].textContent.startsWith(`${from} `) && tr.children[3].textContent !== "—" &&
          tr.dataset.level !== "" && Number(tr.dataset.level) > minDb,
      );
    try {
      await page.waitForFunction(shows, { timeout: 20000 }, from, minDb);
    } catch (e) {
      const shown = await page.$eval("#main", (m) => m.innerText).catch(() => "?");
      throw new Error(`the call from ${from} did not show a codec and a level: ${shown.slice(0, 2000)}`);
    }
    return page.evaluate(() => ({
      rows: [...document.querySelectorAll("table.calls tbody tr")].map((tr) => ({
        cells: [...tr.children].map((c) => c.textContent.trim()),
        level: tr.dataset.level,
        callId: tr.dataset.callId,
      })),
      status: document.querySelector(".live-status")?.textContent || "",
    }));
  },
  /** Presses Enter on "Hang up FROM" and waits until its row is gone (or an error shows
   * beside the button). */
  async hangUp({ from }) {
    const text = `Hang up ${from}`;
    const [button] = await page.$$(`xpath/.//button[normalize-space()='${text}']`);
    if (!button) throw new Error(`no button ${text}`);
    await button.focus();
    await page.keyboard.press("Enter");
    await page.waitForFunction(
      (b) => !b.isConnected || (b.nextElementSibling?.textContent && !b.disabled),
      { timeout: 20000 },
      button,
    );
    const error = await button.evaluate((b) => (b.isConnected ? b.nextElementSibling?.textContent || null : null));
    const said = await page.$eval(".hung-up", (p) => p.textContent);
    return { error, said, ...(await view()) };
  },
  async screenshot({ file, width, height }) {
    await page.setViewport({ width: width || 1280, height: height || 800 });
    await page.screenshot({ path: file, fullPage: true });
    await page.setViewport({ width: 1280, height: 800 });
    return file;
  },
  async keyboardOnly() {
    // Tab through the page: every stop is a link, button or labelled field.
    const stops = [];
    await page.evaluate(() => document.activeElement?.blur());
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press("Tab");
      stops.push(await page.evaluate(() => {
        const e = document.activeElement;
        const label = e.labels?.[0]?.textContent || e.getAttribute("aria-label") || e.textContent;
        return { tag: e.tagName, label: (label || "").trim().slice(0, 60) };
      }));
    }
    return stops;
  },
  async report() {
    return seen;
  },
};

async function submit_with(form, values) {
  await page.waitForSelector(`form[aria-label="${form}"]`);
  await fill(form, values);
  return submit(form);
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const { id, op, args } = JSON.parse(line);
  if (op === "quit") break;
  let answer;
  try {
    if (!ops[op]) throw new Error(`unknown op ${op}`);
    answer = { id, ok: true, result: await ops[op](args || {}) };
  } catch (e) {
    answer = { id, ok: false, error: String(e?.stack || e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await browser.close();
