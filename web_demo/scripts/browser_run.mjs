// Drives the demo page in headless Chromium (playwright-core, a Chromium the caller names) and prints JSON.
//
//   node scripts/browser_run.mjs plan.json
//
// plan.json: {"chromium": "/usr/bin/chromium", "page": "http://127.0.0.1:PORT/index.html", "timeout_ms": 60000,
//             "steps": [{"op": "load", "model": URL}, {"op": "classify", "image": URL, "repeats": 3},
//                       {"op": "loadBytes", "name": "x.tflite", "base64": "..."}, {"op": "message"},
//                       {"op": "screenshot", "path": "shot.png", "width": 1100, "height": 620}]}
// Output: {"ok": true, "browser": version, "crossOriginIsolated": bool, "results": [one per step], "console": [...]}.

import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = { ok: false, results: [], console: [] };
let browser;
try {
  browser = await chromium.launch({
    executablePath: plan.chromium || "/usr/bin/chromium",
    headless: true,
    // a fake camera (Chromium's test pattern) and no permission prompt, for the camera step
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-webgpu", "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream"],
    timeout: 30000,
  });
  out.browser = browser.version();
  const page = await browser.newPage({ viewport: { width: plan.width || 1100, height: plan.height || 640 } });
  page.setDefaultTimeout(plan.timeout_ms || 60000);
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") out.console.push(`${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));
  await page.goto(plan.page);
  await page.waitForFunction(() => document.body.dataset.ready === "1");
  out.crossOriginIsolated = await page.evaluate(() => crossOriginIsolated);
  out.webgpu = await page.evaluate(async () => !!(navigator.gpu && (await navigator.gpu.requestAdapter().catch(() => null))));
  for (const step of plan.steps) {
    let result;
    if (step.op === "load") {
      result = await page.evaluate(([url, accelerator]) => window.kitDemo.loadModelUrl(url, { accelerator }), [step.model, step.accelerator || "auto"]);
    } else if (step.op === "loadBytes") {
      result = await page.evaluate(([b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        return window.kitDemo.loadModelBytes(bytes, name);
      }, [step.base64, step.name]);
    } else if (step.op === "classify") {
      result = await page.evaluate(([url, repeats]) => window.kitDemo.classifyUrl(url, { repeats }), [step.image, step.repeats ?? 3]);
    } else if (step.op === "classifyBytes") {
      result = await page.evaluate(([b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        return window.kitDemo.classifyBytes(bytes, name, { repeats: 0 });
      }, [step.base64, step.name]);
    } else if (step.op === "pick" || step.op === "drop") {
      // a person's ways in: the file picker (#model-file or #image-file), or files dropped on the page
      const before = await page.evaluate(() => window.kitDemo.changes());
      if (step.op === "pick") {
        await page.setInputFiles(step.input, step.files);
      } else {
        const files = step.files.map((f) => ({ name: f.split("/").pop(), base64: readFileSync(f).toString("base64") }));
        await page.evaluate((files) => {
          const data = new DataTransfer();
          for (const f of files) data.items.add(new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name));
          document.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
        }, files);
      }
      await page.waitForFunction((n) => window.kitDemo.changes() >= n, before + step.files.length);
      result = await page.evaluate(() => ({
        model: window.kitDemo.model()?.name ?? null,
        caption: document.getElementById("image-name").textContent,
        top1: document.querySelector("#top5 tbody tr td")?.textContent ?? null,
        message: window.kitDemo.message(),
      }));
    } else if (step.op === "camera") {
      // the buttons a person uses: start the camera, classify a frame, stop it
      await page.click("#camera-start");
      await page.waitForFunction(() => { const v = document.getElementById("camera"); return !v.hidden && v.videoWidth > 0; });
      await page.click("#camera-snap");
      await page.waitForFunction(() => document.getElementById("image-name").textContent.startsWith("camera frame")
        || !document.getElementById("message").hidden);
      result = await page.evaluate(() => ({
        caption: document.getElementById("image-name").textContent,
        rows: document.querySelectorAll("#top5 tbody tr").length,
        message: window.kitDemo.message(),
      }));
      await page.click("#camera-stop");
    } else if (step.op === "decode") {
      result = await page.evaluate((url) => window.kitDemo.decodeUrl(url), step.image);
    } else if (step.op === "model") {
      result = await page.evaluate(() => window.kitDemo.model());
    } else if (step.op === "message") {
      result = await page.evaluate(() => window.kitDemo.message());
    } else if (step.op === "screenshot") {
      await page.setViewportSize({ width: step.width || 1100, height: step.height || 640 });
      await page.screenshot({ path: step.path, fullPage: true });
      result = { path: step.path };
    } else {
      throw new Error(`unknown step ${step.op}`);
    }
    out.results.push(result);
  }
  out.ok = true;
} catch (error) {
  out.error = String(error && error.stack ? error.stack : error);
} finally {
  if (browser) await browser.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.ok ? 0 : 1);
