// Drives the diagnostics page (Server.DiagnosticsHandler) in headless
// Chromium (Debian's /usr/bin/chromium through playwright-core; no browser
// is downloaded), for diagnostics_browser_test.go in JSON lines: events on
// standard output, commands on standard input.
//
// Environment: PAGE_URL (the page), TOKEN (sent as a bearer token, which
// the test's middleware requires), CHROMIUM (default /usr/bin/chromium).
//
// Events: ready {rows} once the page is loaded | seen {rows, navigations,
// pwned} when the clients table lists exactly the expected connections |
// error {error}. Rows are the clients table's rows: {key, cells}.
//
// Commands: {"op":"expect","keys":[connection ids]} waits, without
// reloading, until the table lists exactly those connections. Standard
// input closing ends the browser and the process.
"use strict";

const { withChromium } = require("./chromium.cjs");
const readline = require("readline");

const url = process.env.PAGE_URL;
const token = process.env.TOKEN;
const timeout = 20000;

const emit = (event, fields) => process.stdout.write(JSON.stringify(Object.assign({ event }, fields)) + "\n");

async function main() {
  await withChromium("communication-diagnostics-", timeout, { extraHTTPHeaders: { Authorization: "Bearer " + token } }, async (context) => {
    const page = await context.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(m.text());
    });
    let navigations = 0;
    page.on("framenavigated", (f) => {
      if (f === page.mainFrame()) navigations++;
    });
    const resp = await page.goto(url);
    if (!resp.ok()) throw new Error("the page answered " + resp.status());
    const rows = () =>
      page.$$eval("#clients tbody tr", (trs) =>
        trs.map((tr) => ({ key: tr.dataset.key, cells: [...tr.children].map((td) => td.textContent) }))
      );
    emit("ready", { rows: await rows() });

    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) {
      if (!line.trim()) continue;
      const cmd = JSON.parse(line);
      if (cmd.op !== "expect") throw new Error("unknown command " + line);
      const want = [...cmd.keys].sort();
      await page.waitForFunction(
        (want) =>
          JSON.stringify([...document.querySelectorAll("#clients tbody tr")].map((tr) => tr.dataset.key).sort()) ===
          JSON.stringify(want),
        want
      );
      emit("seen", {
        rows: await rows(),
        navigations,
        pwned: await page.evaluate(() => window.pwned !== undefined),
        status: await page.textContent("#status"),
        pageErrors,
      });
    }
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    emit("error", { error: String(e && e.stack ? e.stack : e) });
    process.exit(1);
  }
);
