// Drives a running node's dashboard in Debian's headless Chromium (run by tests/operator.rs).
//
// Environment:
//   LAKITU_URL         the address `lakitu dashboard` printed (token in the fragment)
//   LAKITU_PEER_ID     a peer the page must list as alive
//   LAKITU_CLI_POST    the body of a post made with `lakitu post` the feed must show
//   LAKITU_FORM_POST   the body to submit through the page's post form
//   LAKITU_SCREENSHOT  where to save a PNG of the page
//   CHROMIUM           the browser (default /usr/bin/chromium)
// Prints one JSON line ({"posted": id, ...}) and exits 0, or explains and exits 1.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const STEP_MS = 20_000;
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

// The whole run is bounded even if the browser hangs.
const watchdog = setTimeout(() => {
  console.error("dashboard test: gave up after 120 s");
  process.exit(1);
}, 120_000);

const url = env("LAKITU_URL");
const peerId = env("LAKITU_PEER_ID");
const cliPost = env("LAKITU_CLI_POST");
const formPost = env("LAKITU_FORM_POST");
const screenshot = env("LAKITU_SCREENSHOT");
const profile = mkdtempSync(join(tmpdir(), "lakitu-chromium-"));

let context;
try {
  // A fresh profile; no background networking (this machine has no network but loopback).
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 1000 },
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
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  const consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });

  await page.goto(url);
  // The token moved from the address bar into session storage.
  await page.waitForFunction(() => location.hash === "");
  // Status: this node's id is shown.
  await page.waitForFunction(() => document.getElementById("node-id").textContent.length > 10);
  // Peers: the other node, alive, over QUIC.
  const peerRow = page.locator(`#peers tr.peer[data-id="${peerId}"]`);
  await peerRow.locator("td.state-alive").waitFor();
  const peerTransport = (await peerRow.locator("td").nth(2).textContent()).trim();
  // Transports: QUIC with traffic.
  const quicRow = page.locator("#transports tr.transport", { hasText: "quic" });
  await quicRow.waitFor();
  // World stats: two nodes report.
  await page.waitForFunction(() => {
    const dd = Array.from(document.querySelectorAll("#world dt")).find(
      (dt) => dt.textContent === "Nodes alive"
    );
    return dd && dd.nextElementSibling.textContent === "2";
  });
  // Feed: the post made with `lakitu post` on the other node.
  await page.locator("#feed .post .body", { hasText: cliPost }).waitFor();

  // The form: post, see the acknowledgement and the post in the feed.
  await page.fill("#post-topics", "#dashboard browser");
  await page.fill("#post-body", formPost);
  await page.click("#post-submit");
  await page.waitForFunction(() =>
    document.getElementById("post-status").textContent.startsWith("posted ")
  );
  const mine = page.locator("#feed .post", { hasText: formPost });
  await mine.waitFor();
  const posted = await mine.getAttribute("data-id");
  const topics = await mine.locator(".topic").allTextContents();

  // Let the highlight fade so the screenshot shows the settled page, then check what it
  // shows: the rendered text, not just the DOM.
  await page.waitForTimeout(300);
  await page.screenshot({ path: screenshot, fullPage: true });
  const text = await page.locator("body").innerText();
  const visible = {
    peer: text.includes(peerId.slice(0, 16)),
    cli_post: text.includes(cliPost),
    form_post: text.includes(formPost),
    quic: await quicRow.isVisible(),
  };
  console.log(
    JSON.stringify({
      posted,
      topics,
      visible,
      peer_transport: peerTransport,
      feed_items: await page.locator("#feed .post").count(),
      history: await page.locator("#stat-history").textContent(),
      console_errors: consoleErrors,
    })
  );
} catch (e) {
  console.error("dashboard test failed:", e && e.stack ? e.stack : e);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
