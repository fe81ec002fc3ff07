// The browser tests: the booking site (site.mjs) and the admin console (admin.mjs) driven in
// Debian's Chromium through playwright-core, against a running deployment (the single binary
// or a split deployment's gateway). axe-core checks every page; screenshots at desktop and
// phone width are written for docs/site.md. Usage:
//
//   node run.mjs --base http://127.0.0.1:8080 [--only site|admin] [--shots DIR] [--report FILE]
//
// The admin account comes from ADMIN_EMAIL / ADMIN_PASSWORD. Exits 1 on the first failure.
// A scenario is `export default async function (t)`, `t` being below: the base URL, the
// admin, new pages (desktop or phone), `check` (axe and a screenshot), `step`, and the REST
// API from node (`rest`, `token`, `customer`) with `until` to poll it.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    base: { type: "string", default: process.env.BASE_URL || "http://127.0.0.1:8080" },
    only: { type: "string" },
    shots: { type: "string", default: join(here, "../../docs/img/site") },
    report: { type: "string" },
  },
});
const admin = { username: process.env.ADMIN_EMAIL || "admin@example.com", password: process.env.ADMIN_PASSWORD || "" };
assert.ok(admin.password, "ADMIN_PASSWORD must name the deployment's admin password");
mkdirSync(args.shots, { recursive: true });

const AXE = readFileSync(join(here, "node_modules/axe-core/axe.min.js"), "utf8");
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

// As the machine's notes say: without the background-networking flags Chromium keeps trying
// to reach Google's hosts, which this closed network refuses.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

const axeResults = [];
const started = Date.now();

const t = {
  base: args.base.replace(/\/$/, ""),
  admin,
  assert,
  /** A page in a context of its own (its own cookies and storage: another person). */
  async newPage({ phone = false } = {}) {
    const context = await browser.newContext({ viewport: phone ? PHONE : DESKTOP, deviceScaleFactor: 1, isMobile: phone, hasTouch: phone });
    const page = await context.newPage();
    page.phone = phone;
    page.on("pageerror", (e) => console.error(`  page error: ${e.message}`));
    page.on("console", (m) => m.type() === "error" && !m.text().includes("Failed to load resource") && console.error(`  console: ${m.text()}`));
    return page;
  },
  /** axe-core on the page as it is (no serious or critical violation), and its screenshot. */
  async check(page, name) {
    // Evaluated through the DevTools protocol, which the page's CSP (no inline script) allows.
    if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(AXE);
    const result = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length, targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
    });
    // What a rendering slip shows (a null child, an undefined field).
    const slip = await page.evaluate(() => document.body.innerText.match(/\b(null|undefined|NaN)\b|\[object Object\]/)?.[0]);
    assert.equal(slip, undefined, `${name}: the page shows "${slip}"`);
    const width = page.phone ? "phone" : "desktop";
    const file = join(args.shots, `${name}-${width}.png`);
    await page.screenshot({ path: file, fullPage: !page.phone });
    axeResults.push({ page: name, width, url: page.url().replace(t.base, ""), violations: result });
    const blocking = result.filter((v) => v.impact === "serious" || v.impact === "critical");
    const minor = result.length - blocking.length;
    console.log(`  axe ${name} (${width}): ${blocking.length} serious/critical, ${minor} minor${minor ? ` (${result.filter((v) => !blocking.includes(v)).map((v) => v.id).join(", ")})` : ""}`);
    assert.deepEqual(blocking, [], `axe: serious or critical violations on ${name} (${width})`);
  },
  async step(name, fn) {
    const at = Date.now();
    process.stdout.write(`- ${name}\n`);
    await fn();
    console.log(`  ok (${((Date.now() - at) / 1000).toFixed(1)} s)`);
  },
  /** The REST API from node (what another customer, or the setup, does). */
  async rest(method, path, { token, body, form, headers = {} } = {}) {
    const init = { method, headers: { ...headers } };
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (form) init.body = new URLSearchParams(form);
    else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(`${t.base}${path}`, init);
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return data;
  },
  async token(username, password) {
    return (await t.rest("POST", "/api/auth/token", { form: { username, password } })).access_token;
  },
  /** A new customer: its name and token. */
  async customer(name) {
    const username = `${name}${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
    const password = "correct horse battery";
    await t.rest("POST", "/api/auth/register", { body: { email: `${username}@example.com`, username, password } });
    return { username, password, email: `${username}@example.com`, token: await t.token(username, password) };
  },
  /** Polls `fn` until it answers truthy, for at most `seconds`. */
  async until(what, fn, seconds = 30) {
    for (const end = Date.now() + seconds * 1000; Date.now() < end; ) {
      const value = await fn();
      if (value) return value;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out waiting for ${what}`);
  },
};

const scenarios = { site: "./site.mjs", admin: "./admin.mjs" };
let failed = false;
for (const [name, file] of Object.entries(scenarios)) {
  if (args.only && args.only !== name) continue;
  console.log(`# ${name} against ${t.base}`);
  try {
    await (await import(file)).default(t);
  } catch (e) {
    console.error(`FAIL ${name}: ${e.stack || e}`);
    failed = true;
    break;
  }
}
await browser.close();

const lines = [`| page | width | serious | critical | moderate | minor |`, `|---|---|---|---|---|---|`];
for (const r of axeResults) {
  const n = (impact) => r.violations.filter((v) => v.impact === impact).length;
  lines.push(`| ${r.page} | ${r.width} | ${n("serious")} | ${n("critical")} | ${n("moderate")} | ${n("minor")} |`);
}
const summary = `axe-core ${JSON.parse(readFileSync(join(here, "node_modules/axe-core/package.json"), "utf8")).version} on ${axeResults.length} pages of ${t.base} (${((Date.now() - started) / 1000).toFixed(0)} s)\n\n${lines.join("\n")}\n`;
console.log(`\n${summary}`);
if (args.report) writeFileSync(args.report, `${summary}\n<!-- violations -->\n${JSON.stringify(axeResults, null, 1)}\n`);
process.exit(failed ? 1 : 0);
