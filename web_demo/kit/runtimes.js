// The two in-browser runtimes behind one small interface: a .tflite file on LiteRT.js (@litertjs/core: WASM with
// XNNPACK on the CPU, WebGPU when the browser offers it), an .onnx file on onnxruntime-web (WASM). Both load from the
// page's own vendor/ folder (scripts/vendor.mjs copies them there from node_modules): nothing from a CDN.
//
// A runner takes one input tensor as a typed array in the model's own input type and returns the raw output
// (typed array in the output's type); quantization is the caller's (kit/preprocess.js), so it is the kit's.

import { fixDynamicBatch } from "./metadata.js";

const VENDOR = new URL("../vendor/", import.meta.url);

export class RuntimeError extends Error {
  constructor(message) {
    super(message);
    this.name = "RuntimeError";
  }
}

function firstLine(error, limit = 300) {
  const text = String(error && error.message ? error.message : error).split("\n").find((l) => l.trim()) || "unknown error";
  return text.length > limit ? text.slice(0, limit) + "..." : text;
}

/** Threads for the WASM backends: the Python edge runtime's default (2) where the page is cross-origin isolated. */
export function wasmThreads() {
  const isolated = globalThis.crossOriginIsolated === true;
  const cores = (globalThis.navigator && navigator.hardwareConcurrency) || 1;
  return isolated ? Math.max(1, Math.min(2, cores)) : 1;
}

// ---- LiteRT.js -------------------------------------------------------------------------------------------------------

let litert = null;  // {module, threaded, webgpu} once loaded

async function loadLiteRtModule() {
  if (litert) return litert;
  installLogTap();
  const module = await import("@litertjs/core");
  const wasmDir = new URL("litertjs/wasm/", VENDOR).href;
  let threaded = false;
  if (wasmThreads() > 1) {
    try {
      await module.loadLiteRt(wasmDir, { threads: true });
      threaded = true;
    } catch (error) {
      console.warn(`LiteRT.js threaded WASM unavailable (${firstLine(error)}); using the single-threaded one`);
      module.unloadLiteRt();
    }
  }
  if (!threaded) await module.loadLiteRt(wasmDir);
  litert = { module, threaded, webgpu: await webGpuAdapter(module) };
  return litert;
}

/**
 * What WebGPU this browser offers: {available, hardware, adapter}. A software adapter (SwiftShader, what headless
 * Chromium has without a GPU) is not used unless asked for (?accelerator=webgpu): it runs the model about 40x slower
 * than the WASM CPU path.
 */
async function webGpuAdapter(module) {
  try {
    if (!module.isWebGPUSupported()) return { available: false, hardware: false, adapter: "none" };
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { available: false, hardware: false, adapter: "none" };
    const info = adapter.info || {};
    const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") || "unnamed adapter";
    const software = info.isFallbackAdapter === true || adapter.isFallbackAdapter === true || /swiftshader|llvmpipe|software/i.test(name);
    return { available: true, hardware: !software, adapter: name };
  } catch {
    return { available: false, hardware: false, adapter: "none" };
  }
}

export async function webGpuStatus() {
  const lib = await loadLiteRtModule();
  return lib.webgpu;
}

const LITERT_DTYPES = ["float32", "int32", "uint8"];

// LiteRT's WASM says why it refuses a model only on console.error (its exceptions say where), and binds console.error
// when it loads: a forwarding wrapper, installed before, lets a compile collect those lines.
let logSink = null;

function installLogTap() {
  if (console.error.kitTap) return;
  const original = console.error.bind(console);
  const tap = (...args) => {
    if (logSink) logSink.push(args.map(String).join(" "));
    original(...args);
  };
  tap.kitTap = true;
  console.error = tap;
}

async function withLiteRtLog(task) {
  const log = [];
  logSink = log;
  try {
    return await task(log);
  } finally {
    logSink = null;
  }
}

function liteRtReason(log, error) {
  const said = log.map((l) => l.split("\n")[0].trim()).filter((l) => l.startsWith("ERROR: ") && !/^ERROR: \[[^\]]*\]$/.test(l))
    .map((l) => l.slice(7).replace(/^\[[^\]]*\]\s*/, ""));
  return said.length ? said[0] : firstLine(error);
}

export async function loadTflite(bytes, name, { accelerator = "auto" } = {}) {
  const lib = await loadLiteRtModule();
  const { module } = lib;
  const wanted = accelerator === "auto" ? (lib.webgpu.hardware ? "webgpu" : "wasm") : accelerator;
  const threads = lib.threaded ? wasmThreads() : 1;
  let model;
  let used = wanted;
  let fixedBatch = 0;
  try {
    [bytes, fixedBatch] = fixDynamicBatch(bytes, name);
  } catch {
    // a FlatBuffer this reader cannot walk: LiteRT.js says what is wrong with it below
  }
  const started = performance.now();
  const compile = (accelerator) => withLiteRtLog((log) => module.loadAndCompile(bytes.slice(), { accelerator, cpuOptions: { numThreads: threads } })
    .catch((error) => { throw new RuntimeError(`${name}: LiteRT.js refused the model (${liteRtReason(log, error)})`); }));
  try {
    model = await compile(wanted);
  } catch (error) {
    if (wanted !== "webgpu") throw error;
    model = await compile("wasm");  // WebGPU could not take it: the CPU may
    used = "wasm";
  }
  const loadMs = performance.now() - started;
  const inputs = model.getInputDetails(), outputs = model.getOutputDetails();
  if (inputs.length !== 1 || outputs.length !== 1) {
    model.delete();
    throw new RuntimeError(`${name}: the demo runs single-input, single-output classifiers; this model has ` +
      `${inputs.length} inputs and ${outputs.length} outputs`);
  }
  const input = inputs[0];
  const shape = Array.from(input.shape, (d) => (d > 0 ? d : 1));  // a dynamic batch (-1) runs one image
  const backend = used === "webgpu" ? `WebGPU (${lib.webgpu.adapter})` : `WASM (XNNPACK, ${threads} thread${threads > 1 ? "s" : ""}${lib.threaded ? "" : ", no cross-origin isolation"})`;
  return {
    runtime: "LiteRT.js (@litertjs/core)",
    backend,
    accelerator: used,
    threads,
    loadMs,
    fixedBatch,
    webgpu: lib.webgpu,
    inputShape: shape,
    inputDtype: input.dtype,
    async run(data) {
      if (!LITERT_DTYPES.includes(input.dtype)) {
        throw new RuntimeError(`${name}: LiteRT.js cannot feed a ${input.dtype} input tensor (it takes ` +
          `${LITERT_DTYPES.join(", ")}); convert the model with --io float32 or --io uint8`);
      }
      let results;
      await withLiteRtLog(async (log) => {
        let tensor;
        try {
          tensor = new module.Tensor(data, shape);
          results = await model.run(tensor);
        } catch (error) {
          throw new RuntimeError(`${name}: LiteRT.js failed running it (${liteRtReason(log, error)})`);
        } finally {
          tensor?.delete();
        }
      });
      try {
        const out = results[0];
        const cpu = out.accelerator === "wasm" ? out : await out.moveTo("wasm");
        const values = cpu.toTypedArray().slice();
        if (cpu !== out) cpu.delete();
        return values;
      } finally {
        for (const t of results) if (!t.deleted) t.delete();
      }
    },
    dispose() {
      model.delete();
    },
  };
}

// ---- onnxruntime-web -------------------------------------------------------------------------------------------------

let ortModule = null;

async function loadOrt() {
  if (ortModule) return ortModule;
  const ort = await import("onnxruntime-web");
  ort.env.wasm.wasmPaths = new URL("onnxruntime-web/", VENDOR).href;
  ort.env.wasm.numThreads = wasmThreads();
  ort.env.logLevel = "error";
  ortModule = ort;
  return ort;
}

const ORT_TYPES = { "tensor(float)": "float32", float32: "float32", uint8: "uint8", int8: "int8" };

export async function loadOnnx(bytes, name, { inputShape, inputDtype = "float32" } = {}) {
  const ort = await loadOrt();
  const started = performance.now();
  let session;
  try {
    session = await ort.InferenceSession.create(bytes.slice(), { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  } catch (error) {
    throw new RuntimeError(`${name}: onnxruntime-web refused the model (${firstLine(error)})`);
  }
  const loadMs = performance.now() - started;
  if (session.inputNames.length !== 1 || session.outputNames.length !== 1) {
    await session.release();
    throw new RuntimeError(`${name}: the demo runs single-input, single-output classifiers; this model has ` +
      `${session.inputNames.length} inputs and ${session.outputNames.length} outputs`);
  }
  const shape = (inputShape || []).map((d) => (d > 0 ? d : 1));
  const threads = ort.env.wasm.numThreads;
  return {
    runtime: `onnxruntime-web ${ort.env.versions ? ort.env.versions.web || "" : ""}`.trim(),
    backend: `WASM (SIMD, ${threads} thread${threads > 1 ? "s" : ""}${globalThis.crossOriginIsolated ? "" : ", no cross-origin isolation"})`,
    accelerator: "wasm",
    threads,
    loadMs,
    inputShape: shape,
    inputDtype: ORT_TYPES[inputDtype] || inputDtype,
    async run(data) {
      const feeds = { [session.inputNames[0]]: new ort.Tensor(this.inputDtype, data, shape) };
      let results;
      try {
        results = await session.run(feeds);
      } catch (error) {
        throw new RuntimeError(`${name}: onnxruntime-web failed running it (${firstLine(error)})`);
      }
      const out = results[session.outputNames[0]];
      const values = out.data.slice();
      out.dispose();
      return values;
    },
    dispose() {
      session.release();
    },
  };
}
