// End-to-end test of the `serve` example's page in headless Chromium (Debian's `chromium`,
// driven by playwright-core). Run by scripts/browser-test.sh, which builds and starts the
// server; by hand:
//
//   DPPD_URL=http://127.0.0.1:8000/ node tests/browser/serve.test.mjs
//
// Environment: DPPD_URL (required), CHROMIUM (default /usr/bin/chromium), SCREENSHOT (a path:
// save a screenshot of the page after the restoration).
//
// What it checks, as a user would see it:
// 1. choosing the demo photo assets/demo/noisy-chelsea.png shows progress (tile by tile), then
//    the label "noise NN%", and the downloaded result is a PNG of the input's size;
// 2. the viewer zooms on the wheel;
// 3. with "uncertainty map" ticked, the map is shown and offered for download; with "best
//    quality" ticked, the photo is restored in 8 views ("· 8 views");
// 4. two photos chosen at once are queued (one waits for the other) and both restored;
// 5. a truncated PNG gets HTTP 400 and the crate's message "broken.png: truncated PNG …" on the
//    page, a text file HTTP 415, a file beyond the upload limit HTTP 413, and the server keeps
//    serving.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const base = process.env.DPPD_URL;
if (!base) throw new Error("set DPPD_URL to the server's address, e.g. http://127.0.0.1:8000/");
const demo = path.join(root, "assets/demo/noisy-chelsea.png");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "dppd-browser-"));
const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);

/** Width and height from a PNG's IHDR chunk. */
function pngSize(bytes) {
  assert.equal(bytes.subarray(1, 4).toString("latin1"), "PNG", "not a PNG file");
  assert.equal(bytes.subarray(12, 16).toString("latin1"), "IHDR");
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = false;
try {
  log(`chromium ${browser.version()}`);
  const page = await browser.newPage({ viewport: { width: 1100, height: 620 }, acceptDownloads: true });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));
  // The page must not reach anything but the server.
  const origin = new URL(base).origin;
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(origin)) foreign.push(r.url()); });

  await page.goto(base);
  assert.equal(await page.title(), "dppd — restore a photo");
  await page.waitForFunction(() => document.getElementById("model").textContent.includes("parameters"));
  // Record every state the viewer shows, and every status line with the progress bar's width.
  await page.evaluate(() => {
    window.states = [];
    window.progress = [];
    const v = document.getElementById("view");
    new MutationObserver(() => {
      if (window.states.at(-1) !== v.dataset.state) window.states.push(v.dataset.state);
    }).observe(v, { attributes: true, attributeFilter: ["data-state"] });
    const status = document.getElementById("status");
    const bar = document.querySelector("#progress > i");
    new MutationObserver(() => {
      window.progress.push(`${status.textContent} [${bar.style.width}]`);
    }).observe(status, { childList: true, characterData: true, subtree: true });
  });

  // 1. The demo photo: progress, label, download.
  log("uploading noisy-chelsea.png");
  const accepted = page.waitForResponse((r) => r.url().includes("/api/jobs") && r.request().method() === "POST");
  await page.setInputFiles("#file", demo);
  assert.equal((await accepted).status(), 202);
  await page.waitForSelector('#view[data-state="done"]', { timeout: 300_000 });
  const label = (await page.textContent("#label")).trim();
  log(`restored; label "${label}", ${await page.textContent("#status")}`);
  assert.match(label, /^noise \d+(\.\d)?%$/);
  const states = await page.evaluate(() => window.states);
  assert.ok(states.includes("running"), `no progress shown: ${states}`);
  // scripts/browser-test.sh starts the server with a small memory budget: the photo is
  // restored in tiles, and the page counts them.
  const progress = await page.evaluate(() => window.progress);
  const tiles = progress.filter((p) => /^restoring: tile \d+ of \d+ \[\d+(\.\d+)?%\]$/.test(p));
  assert.ok(tiles.length >= 2, `no tile progress shown: ${progress.join(" | ")}`);
  log(`progress shown: ${tiles[0]} … ${tiles.at(-1)}`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  assert.equal(download.suggestedFilename(), "noisy-chelsea-restored.png");
  const saved = path.join(work, download.suggestedFilename());
  await download.saveAs(saved);
  const [w, h] = pngSize(fs.readFileSync(saved));
  assert.deepEqual([w, h], pngSize(fs.readFileSync(demo)));
  log(`downloaded ${download.suggestedFilename()}: ${w}×${h}, the input's size`);

  if (process.env.SCREENSHOT) {
    await page.screenshot({ path: process.env.SCREENSHOT });
    log(`screenshot ${process.env.SCREENSHOT}`);
  }

  // 2. The viewer: the wheel zooms in around the cursor.
  const fitZoom = await page.textContent("#zoom");
  const box = await page.locator("#canvas").boundingBox();
  await page.mouse.move(box.x + box.width * 0.45, box.y + box.height * 0.4);
  await page.mouse.wheel(0, -500);
  const zoomed = await page.textContent("#zoom");
  assert.ok(parseInt(zoomed) > parseInt(fitZoom), `zoom ${fitZoom} -> ${zoomed}`);
  await page.click("#fit");

  // 3. The uncertainty map: 4 sampled restorations, shown on the right of the divider.
  log("uploading with the uncertainty map");
  await page.check("#unc");
  await page.setInputFiles("#file", { name: "chelsea-4.png", mimeType: "image/png", buffer: fs.readFileSync(demo) });
  await page.waitForSelector('#view[data-state="done"]', { timeout: 300_000 });
  assert.match(await page.textContent("#status"), /· 4 samples$/);
  await page.selectOption("#right", "uncertainty");
  assert.match(await page.textContent("#tag-after"), /^uncertainty \(white: σ = \d\.\d{4}\)$/);
  assert.equal(await page.getAttribute("#download-unc", "download"), "chelsea-4-uncertainty.png");
  await page.selectOption("#right", "restored");
  await page.uncheck("#unc");
  log(`uncertainty map shown: ${await page.textContent("#status")}`);

  // 3b. Best quality: the photo restored in 8 views (mirrored, turned) and averaged.
  log("uploading with best quality");
  await page.check("#best");
  await page.setInputFiles("#file", { name: "chelsea-8.png", mimeType: "image/png", buffer: fs.readFileSync(demo) });
  await page.waitForSelector('#view[data-state="done"]', { timeout: 300_000 });
  assert.match(await page.textContent("#status"), /· 8 views$/);
  await page.uncheck("#best");
  log(`best quality: ${await page.textContent("#status")}`);

  // 4. Two photos at once: the second waits for the first.
  log("uploading two photos at once");
  const png = fs.readFileSync(demo);
  await page.setInputFiles("#file", [
    { name: "first.png", mimeType: "image/png", buffer: png },
    { name: "second.png", mimeType: "image/png", buffer: png },
  ]);
  // Newest first: the two new entries are on top. Whichever the server decoded second waits.
  let waited = false;
  const deadline = Date.now() + 300_000;
  for (;;) {
    const texts = (await page.locator("#jobs li .s").allTextContents()).slice(0, 2);
    waited ||= texts.some((t) => /^queued: 1 photo ahead/.test(t));
    if (texts.every((t) => /^noise /.test(t))) break;
    assert.ok(Date.now() < deadline && !texts.some((t) => /error|fail/i.test(t)), texts.join(" | "));
    await page.waitForTimeout(100);
  }
  assert.ok(waited, "neither photo was shown waiting for the other");
  log("both restored, one after the other");

  // 5. Broken files: the crate's message on the page, 4xx, and the server keeps going.
  const broken = path.join(work, "broken.png");
  fs.writeFileSync(broken, png.subarray(0, 20_000));
  const refused = page.waitForResponse((r) => r.url().includes("/api/jobs") && r.request().method() === "POST");
  await page.setInputFiles("#file", broken);
  assert.equal((await refused).status(), 400);
  await page.waitForSelector('#view[data-state="failed"]');
  const message = await page.textContent("#error");
  log(`broken.png refused: "${message}"`);
  assert.match(message, /^broken\.png: truncated PNG/);
  assert.ok(await page.isVisible("#error"));
  assert.ok(!(await page.isVisible("#download")));
  assert.match(await page.locator("#jobs li.sel").getAttribute("class"), /failed/);

  const refusedText = page.waitForResponse((r) => r.url().includes("/api/jobs") && r.request().method() === "POST");
  await page.setInputFiles("#file", { name: "notes.jpg", mimeType: "image/jpeg", buffer: Buffer.from("not a photo\n") });
  assert.equal((await refusedText).status(), 415);
  await page.waitForFunction(() => document.getElementById("error").textContent.startsWith("notes.jpg: "));
  log(`notes.jpg refused: "${await page.textContent("#error")}"`);

  // scripts/browser-test.sh starts the server with --max-upload 1 (MB).
  const refusedBig = page.waitForResponse((r) => r.url().includes("/api/jobs") && r.request().method() === "POST");
  await page.setInputFiles("#file", { name: "huge.png", mimeType: "image/png", buffer: Buffer.concat([png, Buffer.alloc(1_200_000)]) });
  assert.equal((await refusedBig).status(), 413);
  await page.waitForFunction(() => document.getElementById("error").textContent.startsWith("huge.png: the file is larger than this server accepts (1 MB"));
  log(`huge.png refused: "${await page.textContent("#error")}"`);

  const alive = await page.request.get(new URL("/api/info", base).href);
  assert.equal(alive.status(), 200);
  assert.deepEqual(pageErrors, [], "errors in the page");
  assert.deepEqual(foreign, [], "requests outside the server");
  log("all browser checks passed");
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  fs.rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
