// The page: load a kit artifact, classify images with it, show what the file says about itself.
//
// Everything the model needs comes from the file's kit record (kit/metadata.js): labels, the preprocessing spec
// (applied by kit/preprocess.js, the kit's rules in JavaScript), the input/output quantization, the drift summary.
// A test hook, window.kitDemo, drives the same code paths the buttons do (tests/web/).

import { KitFileError, classifierFacts, readKitRecord, verifyContentDigest } from "./kit/metadata.js";
import {
  PreprocessError, RgbImage, cropToInput, dequantize, isQuantized, parseSpec, quantize, resizeAndCrop, softmax, topK,
} from "./kit/preprocess.js";
import { RuntimeError, loadOnnx, loadTflite } from "./kit/runtimes.js";

const MAX_PIXELS = 89_478_485;  // Pillow's decompression-bomb limit, which the Python kit keeps
const DEFAULT_REPEATS = 10;     // runs timed for the steady-state latency (median)
const IMAGE_SUFFIXES = [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".avif"];
const MODEL_SUFFIXES = [".tflite", ".onnx"];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);  // ?model=URL, ?image=URL, ?accelerator=auto|wasm|webgpu
let model = null;     // the loaded model: {name, format, record, labels, spec, io, runner, firstRunMs, runs}
let queue = Promise.resolve();  // one model load or classification at a time
let finished = 0;               // loads and classifications done (ok or not): what a test driver waits on

class ImageDecodeError extends Error {}

function serial(task) {
  const next = queue.then(task, task).finally(() => { finished++; });
  queue = next.catch(() => {});
  return next;
}

// ---- messages ---------------------------------------------------------------------------------------------------------

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = false;
}

function clearMessage() {
  $("message").hidden = true;
  $("message").textContent = "";
}

/** One line for the page from anything thrown; expected failures keep their own message. */
function describe(error) {
  if (error instanceof KitFileError || error instanceof RuntimeError || error instanceof PreprocessError ||
      error instanceof ImageDecodeError) {
    return error.message;
  }
  console.error(error);
  return `unexpected error: ${error && error.message ? error.message : error}`;
}

// ---- model ------------------------------------------------------------------------------------------------------------

function tensorOf(io, fallbackShape) {
  return { dtype: io?.dtype || "float32", shape: io?.shape || fallbackShape, scale: io?.scale || 0, zero_point: io?.zero_point || 0 };
}

async function openModel(bytes, name, { accelerator = "auto" } = {}) {
  const { format, record } = readKitRecord(bytes, name);
  const sealed = await verifyContentDigest(bytes, name, record);
  const facts = classifierFacts(record, name);
  let spec;
  try {
    spec = parseSpec(facts.preprocessing);
  } catch (error) {
    throw new KitFileError("bad_metadata", `${name}: ${error.message}`);
  }
  const input = tensorOf(facts.io.input, [1, spec.height, spec.width, 3]);
  const output = tensorOf(facts.io.output, [1, facts.labels.length]);
  const runner = format === "tflite" ? await loadTflite(bytes, name, { accelerator }) : await loadOnnx(bytes, name, { inputShape: input.shape, inputDtype: input.dtype });
  const perImage = runner.inputShape.slice(1).join("x");
  if (perImage !== `${spec.height}x${spec.width}x3`) {
    runner.dispose();
    throw new RuntimeError(`${name} takes ${perImage} per input, not the ${spec.height}x${spec.width}x3 images its ` +
      "record describes; it is not an image model of this kind (re-convert it with the kit)");
  }
  return { name, format, record, sealed, labels: facts.labels, spec, io: { input, output }, runner, size: bytes.length, firstRunMs: null, runs: 0 };
}

async function loadModelBytes(bytes, name, options = {}) {
  return serial(async () => {
    clearMessage();
    showMessage(`loading ${name}…`, "info");
    try {
      const opened = await openModel(bytes, name, { accelerator: options.accelerator || params.get("accelerator") || "auto" });
      if (model) model.runner.dispose();
      model = opened;
      clearMessage();
      renderModel();
      clearResult();
      return { ok: true, model: modelSummary() };
    } catch (error) {
      const message = describe(error);
      showMessage(model ? `${message} (still using ${model.name})` : message);
      return { ok: false, message: $("message").textContent, kind: error.kind || error.name };
    }
  });
}

async function loadModelUrl(url, options = {}) {
  const name = decodeURIComponent(new URL(url, location.href).pathname.split("/").pop() || url);
  let bytes;
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    showMessage(`${name}: could not fetch the model (${error.message})`);
    return { ok: false, message: $("message").textContent, kind: "fetch" };
  }
  return loadModelBytes(bytes, name, options);
}

function modelSummary() {
  if (!model) return null;
  const r = model.runner;
  return {
    name: model.name, format: model.format, runtime: r.runtime, backend: r.backend, accelerator: r.accelerator, webgpu: r.webgpu || null,
    threads: r.threads, loadMs: r.loadMs, labels: model.labels, preprocessing: model.spec, io: model.io,
    precision: model.record.precision, drift: model.record.drift || null, sealed: model.sealed,
  };
}

function fmt(value, digits = 3) {
  return typeof value === "number" ? value.toFixed(digits) : "—";
}

function fillList(dl, rows) {
  dl.replaceChildren();
  for (const [key, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }
}

function renderModel() {
  const r = model.runner, rec = model.record, spec = model.spec;
  const io = model.io.input;
  fillList($("model-info"), [
    ["model", `${model.name} (${(model.size / 1e6).toFixed(2)} MB)`],
    ["network", `${rec.model?.name ? `${rec.model.name}, ` : ""}${model.labels.length} classes`],
    ["precision", `${rec.precision || "?"}, input ${io.dtype}${isQuantized(io) ? ` (scale ${io.scale.toPrecision(6)}, zero point ${io.zero_point})` : ""}`],
    ["integrity", model.sealed ? "content digest verified (SHA-256)" : "no content digest (an older kit's file)"],
    ["runtime", r.runtime],
    ["backend", r.backend],
    ["load + compile", `${fmt(r.loadMs, 1)} ms`],
    ...(r.webgpu ? [["WebGPU", !r.webgpu.available ? "not available in this browser" : r.webgpu.hardware
      ? `${r.webgpu.adapter}${r.accelerator === "webgpu" ? " (used)" : " (not used: the CPU was asked for)"}`
      : `software only (${r.webgpu.adapter})${r.accelerator === "webgpu" ? ", used as asked" : ", not used; ?accelerator=webgpu forces it"}`]] : []),
    ["preprocessing", `${spec.resize === "shorter_side" ? `shorter side to ${Math.trunc(Math.min(spec.height, spec.width) / spec.crop_fraction)}, centre crop` : "stretch"} ${spec.width}x${spec.height}, ${spec.interpolation}${spec.normalize_in_model ? ", raw pixels (model normalizes)" : ", mean/std normalized"}`],
  ]);
  const d = rec.drift;
  if (!d) {
    fillList($("drift"), [["drift", "none recorded in this file"]]);
    return;
  }
  const pct = (v) => (typeof v === "number" ? `${(100 * v).toFixed(2)}%` : "—");
  fillList($("drift"), [
    ["images", `${d.images ?? "—"}${rec.validation?.source ? ` (${rec.validation.source})` : ""}`],
    ["top-1 agreement", pct(d.top1_agreement)],
    ["top-5 agreement", pct(d.top5_agreement)],
    ["SQNR", typeof d.sqnr_db === "number" ? `${d.sqnr_db.toFixed(1)} dB` : "—"],
    ["max |error| / range", typeof d.max_abs_error_of_range === "number" ? d.max_abs_error_of_range.toExponential(2) : "—"],
    ["accuracy", `${pct(d.reference_accuracy)} → ${pct(d.artifact_accuracy)}`],
    ["within budget", d.within_budget === false ? `no: ${(d.violations || []).join("; ")}` : "yes"],
    ["validated with", rec.validated_with || "—"],
  ]);
}

// ---- images -----------------------------------------------------------------------------------------------------------

/** The RGB bytes of an encoded image at its own size: no browser resampling, no colour conversion, no premultiplying. */
async function decodeImage(source, name) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(source, { premultiplyAlpha: "none", colorSpaceConversion: "none", imageOrientation: "from-image" });
  } catch {
    throw new ImageDecodeError(`${name}: not a readable image (the browser could not decode it); pick a JPEG, PNG, WebP or BMP file`);
  }
  return bitmapToRgb(bitmap, name);
}

function bitmapToRgb(bitmap, name) {
  const { width, height } = bitmap;
  if (!width || !height) throw new ImageDecodeError(`${name}: the image is empty`);
  if (width * height > MAX_PIXELS) {
    bitmap.close?.();
    throw new ImageDecodeError(`${name}: the image is over the ${MAX_PIXELS.toLocaleString("en")} pixel limit; downscale it first`);
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close?.();
  const pixels = ctx.getImageData(0, 0, width, height, { colorSpace: "srgb" }).data;
  return RgbImage.fromRgba(width, height, pixels);
}

function drawPreview(crop) {
  const canvas = $("preview");
  canvas.width = crop.width;
  canvas.height = crop.height;
  const rgba = new Uint8ClampedArray(crop.width * crop.height * 4);
  for (let i = 0, j = 0; j < crop.rgb.length; i += 4, j += 3) {
    rgba[i] = crop.rgb[j];
    rgba[i + 1] = crop.rgb[j + 1];
    rgba[i + 2] = crop.rgb[j + 2];
    rgba[i + 3] = 255;
  }
  canvas.getContext("2d").putImageData(new ImageData(rgba, crop.width, crop.height), 0, 0);
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function classifyRgb(image, name, { repeats = DEFAULT_REPEATS } = {}) {
  if (!model) throw new RuntimeError("load a model first (a .tflite or .onnx file the kit converted)");
  const t0 = performance.now();
  const crop = resizeAndCrop(image, model.spec);
  const x = cropToInput(crop, model.spec);
  const input = isQuantized(model.io.input) ? quantize(x, model.io.input) : x;
  const preprocessMs = performance.now() - t0;
  drawPreview(crop);
  const t1 = performance.now();
  const raw = await model.runner.run(input);
  const runMs = performance.now() - t1;
  if (model.firstRunMs === null) model.firstRunMs = runMs;
  const times = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    await model.runner.run(input);
    times.push(performance.now() - t);
  }
  model.runs += 1 + repeats;
  const logits = dequantize(raw, model.io.output);
  if (logits.length !== model.labels.length) {
    throw new RuntimeError(`${model.name}: ${model.labels.length} labels in its metadata but ${logits.length} outputs; re-convert it`);
  }
  const probs = softmax(logits);
  const top5 = topK(probs, model.labels, 5);
  const result = {
    image: name, width: image.width, height: image.height, top5, probs, logits: Array.from(logits),
    latencyMs: { firstRun: model.firstRunMs, thisRun: runMs, steady: times.length ? median(times) : runMs, repeats, preprocess: preprocessMs },
    runtime: model.runner.runtime, backend: model.runner.backend, model: model.name,
  };
  renderResult(result);
  return result;
}

function clearResult() {
  $("top5").tBodies[0].replaceChildren();
  $("image-name").textContent = "";
  fillList($("latency"), []);
}

function renderResult(result) {
  const body = $("top5").tBodies[0];
  body.replaceChildren();
  for (const p of result.top5) {
    const tr = document.createElement("tr");
    const label = document.createElement("td");
    label.textContent = p.label;
    const bar = document.createElement("td");
    bar.style.width = "45%";
    const fill = document.createElement("div");
    fill.className = "bar";
    fill.style.width = `${Math.max(0.5, 100 * p.probability)}%`;
    bar.append(fill);
    const prob = document.createElement("td");
    prob.className = "p";
    prob.textContent = `${(100 * p.probability).toFixed(2)}%`;
    tr.append(label, bar, prob);
    body.append(tr);
  }
  $("image-name").textContent = `${result.image} (${result.width}x${result.height}) — ${result.model}`;
  const l = result.latencyMs;
  fillList($("latency"), [
    ["first run", `${fmt(l.firstRun, 2)} ms (the model's first inference)`],
    ["steady state", `${fmt(l.steady, 2)} ms (median of ${l.repeats} runs)`],
    ["preprocessing", `${fmt(l.preprocess, 2)} ms (decode excluded)`],
    ["runtime", result.runtime],
    ["backend", result.backend],
  ]);
}

async function classifySource(getImage, name, options) {
  return serial(async () => {
    clearMessage();
    try {
      const image = await getImage();
      return { ok: true, ...(await classifyRgb(image, name, options)) };
    } catch (error) {
      showMessage(describe(error));
      return { ok: false, message: $("message").textContent, kind: error.name };
    }
  });
}

function classifyBlob(blob, name, options) {
  return classifySource(() => decodeImage(blob, name), name, options);
}

async function classifyUrl(url, options) {
  const name = decodeURIComponent(new URL(url, location.href).pathname.split("/").pop() || url);
  return classifySource(async () => {
    const response = await fetch(url);
    if (!response.ok) throw new ImageDecodeError(`${name}: could not fetch the image (HTTP ${response.status})`);
    return decodeImage(await response.blob(), name);
  }, name, options);
}

// ---- camera -------------------------------------------------------------------------------------------------------------

let stream = null;

async function startCamera() {
  clearMessage();
  if (!navigator.mediaDevices?.getUserMedia) {
    showMessage("this browser offers no camera here (getUserMedia needs https or localhost)");
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (error) {
    showMessage(`no camera: ${error.message || error.name}`);
    return;
  }
  const video = $("camera");
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  $("camera-snap").hidden = $("camera-stop").hidden = false;
  $("camera-start").hidden = true;
}

function stopCamera() {
  for (const track of stream?.getTracks() || []) track.stop();
  stream = null;
  $("camera").hidden = true;
  $("camera-snap").hidden = $("camera-stop").hidden = true;
  $("camera-start").hidden = false;
}

function snapCamera() {
  const video = $("camera");
  return classifySource(async () => bitmapToRgb(await createImageBitmap(video), "camera frame"), `camera frame ${new Date().toLocaleTimeString()}`);
}

// ---- wiring -------------------------------------------------------------------------------------------------------------

function isModelFile(file) {
  const lower = file.name.toLowerCase();
  return MODEL_SUFFIXES.some((s) => lower.endsWith(s)) || !(file.type.startsWith("image/") || IMAGE_SUFFIXES.some((s) => lower.endsWith(s)));
}

async function openFile(file, asModel) {
  if (asModel) return loadModelBytes(new Uint8Array(await file.arrayBuffer()), file.name);
  return classifyBlob(file, file.name);
}

function wire() {
  $("model-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (file) openFile(file, true);
  });
  $("image-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (file) openFile(file, false);
  });
  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);
  $("camera-snap").addEventListener("click", snapCamera);
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (e) => {
    if (!e.relatedTarget) document.body.classList.remove("dragging");
  });
  document.addEventListener("drop", async (e) => {
    e.preventDefault();
    document.body.classList.remove("dragging");
    const files = [...(e.dataTransfer?.files || [])];
    // a model first, so "drop a model and a photo together" works
    files.sort((a, b) => Number(isModelFile(b)) - Number(isModelFile(a)));
    for (const file of files) await openFile(file, isModelFile(file));
  });
}

window.kitDemo = {
  loadModelUrl,
  loadModelBytes: (bytes, name, options) => loadModelBytes(new Uint8Array(bytes), name, options),
  classifyUrl,
  classifyBytes: (bytes, name, options) => classifyBlob(new Blob([new Uint8Array(bytes)]), name, options),
  /** The decoded RGB pixels' size and SHA-256 (hex): the test compares them with Pillow's decode. */
  async decodeUrl(url) {
    const response = await fetch(url);
    const image = await decodeImage(await response.blob(), url);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", image.rgb));
    return { width: image.width, height: image.height, sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("") };
  },
  model: modelSummary,
  changes: () => finished,
  message: () => ($("message").hidden ? null : $("message").textContent),
};

wire();
(async () => {
  if (params.get("model")) await loadModelUrl(params.get("model"));
  if (params.get("image") && model) await classifyUrl(params.get("image"));
  document.body.dataset.ready = "1";
})();
