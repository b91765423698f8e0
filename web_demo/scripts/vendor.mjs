// Copies the runtimes the page loads (LiteRT.js, onnxruntime-web: their ES modules and WASM files) from
// node_modules into web_demo/vendor/, so the page serves everything from its own folder: no CDN at run time.
// Run by `make web-deps` after `npm ci`.

import { copyFileSync, mkdirSync, rmSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const NM = join(ROOT, "node_modules");
const VENDOR = join(ROOT, "vendor");

const files = [
  ["@litertjs/core/dist/index.js", "litertjs/core.js"],
  ["@litertjs/wasm-utils/dist/index.js", "litertjs/wasm-utils.js"],
  ...readdirSync(join(NM, "@litertjs/core/wasm")).map((f) => [`@litertjs/core/wasm/${f}`, `litertjs/wasm/${f}`]),
  ["onnxruntime-web/dist/ort.wasm.min.mjs", "onnxruntime-web/ort.wasm.min.mjs"],
  ["onnxruntime-web/dist/ort-wasm-simd-threaded.mjs", "onnxruntime-web/ort-wasm-simd-threaded.mjs"],
  ["onnxruntime-web/dist/ort-wasm-simd-threaded.wasm", "onnxruntime-web/ort-wasm-simd-threaded.wasm"],
];

rmSync(VENDOR, { recursive: true, force: true });
for (const [from, to] of files) {
  mkdirSync(dirname(join(VENDOR, to)), { recursive: true });
  copyFileSync(join(NM, from), join(VENDOR, to));
}
console.log(`vendored ${files.length} files into ${VENDOR}`);
