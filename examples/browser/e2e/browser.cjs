// End-to-end test of the browser example in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core; no browser is downloaded).
// Run by browser_test.go, which starts the Go server; it reports JSON lines
// on standard output ({"event": "step" | "result" | "error", ...}) and
// exits non-zero on failure.
//
// Environment: BASE_URL (the example's address), KEY (the API key),
// PROTOCOL (json | messagepack), CHROMIUM (default /usr/bin/chromium).
"use strict";

const { withChromium } = require("../../../interop/js/chromium.cjs");

const base = process.env.BASE_URL;
const key = process.env.KEY;
const protocol = process.env.PROTOCOL || "json";
const timeout = 15000;

const emit = (event, fields) => process.stdout.write(JSON.stringify(Object.assign({ event }, fields)) + "\n");
const step = (name) => emit("step", { name });

async function main() {
  await withChromium("communication-e2e-", timeout, {}, async (context) => {
    const pageErrors = [];
    const sockets = [];
    const open = async (name, pageKey) => {
      const page = await context.newPage();
      page.on("pageerror", (e) => pageErrors.push(`${name}: ${e.message}`));
      page.on("console", (m) => {
        // The refused page logs its 401 by design.
        if (m.type() === "error" && pageKey === key) pageErrors.push(`${name} console: ${m.text()}`);
      });
      page.on("websocket", (ws) => sockets.push({ page: name, url: ws.url() }));
      await page.goto(`${base}/?protocol=${protocol}`);
      await page.fill("#key", pageKey);
      await page.fill("#name", name);
      await page.click("#connect");
      return page;
    };
    const clientNames = async (page) =>
      (await page.locator("#clients li").allTextContents()).map((s) => s.replace(/ \(you\)$/, ""));
    const waitForClients = (page, names) =>
      page.waitForFunction(
        (want) =>
          JSON.stringify(
            [...document.querySelectorAll("#clients li")].map((li) => li.textContent.replace(/ \(you\)$/, "")).sort()
          ) === JSON.stringify(want),
        [...names].sort()
      );

    step("Ada connects with the key");
    const ada = await open("Ada", key);
    await ada.waitForFunction(() => document.getElementById("status").textContent === "connected");

    step("the server asks Ada who she is; the list shows her");
    await waitForClients(ada, ["Ada"]);
    await ada.waitForSelector("#asked li");
    const asked = await ada.textContent("#asked li");

    step("Ada sends a request and gets the answer");
    await ada.fill("#message", "hello from Chromium ✓");
    await ada.click("#send");
    await ada.waitForFunction(() => /The Go server got/.test(document.getElementById("answer").textContent));
    const answer = await ada.textContent("#answer");

    step("Grace connects: both pages show both, live");
    const grace = await open("Grace", key);
    await grace.waitForFunction(() => document.getElementById("status").textContent === "connected");
    await waitForClients(ada, ["Ada", "Grace"]);
    await waitForClients(grace, ["Ada", "Grace"]);
    const withGrace = await clientNames(ada);

    step("Grace leaves: Ada's list shrinks");
    await grace.close();
    await waitForClients(ada, ["Ada"]);
    const afterGrace = await clientNames(ada);

    step("Mallory's wrong key is refused");
    const mallory = await open("Mallory", "not-the-key");
    await mallory.waitForFunction(() => /refused/.test(document.getElementById("status").textContent));
    const refused = await mallory.textContent("#status");
    await waitForClients(ada, ["Ada"]);

    emit("result", {
      protocol,
      asked,
      answer,
      withGrace,
      afterGrace,
      refused,
      adaStatus: await ada.textContent("#status"),
      sockets,
      pageErrors,
    });
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    emit("error", { error: String(e && e.stack ? e.stack : e) });
    process.exit(1);
  }
);
