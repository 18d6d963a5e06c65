// withChromium runs fn(context) in a headless Chromium with a fresh
// profile directory, both ended afterwards whatever fn does. It drives
// Debian's /usr/bin/chromium (or $CHROMIUM) through playwright-core and
// never downloads a browser. options are added to the context's (for
// example extraHTTPHeaders); timeout bounds every step.
const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

async function withChromium(prefix, timeout, options, fn) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  // launchPersistentContext takes the fresh profile directory that
  // --user-data-dir would name.
  const context = await chromium.launchPersistentContext(userDataDir, Object.assign({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout,
  }, options));
  context.setDefaultTimeout(timeout);
  try {
    return await fn(context);
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

module.exports = { withChromium };
