// The page's preprocessing (kit/preprocess.js) held to the golden vectors that `python -m edge.golden` writes, the
// same ones the Android core is held to: resized-and-cropped pixels byte for byte, model inputs byte for byte
// (uint8/int8) or within 1e-6 (float32), and the recorded top-5 from the recorded raw outputs.
//
//   node --test test/                                  # the committed vectors (android_demo/core/.../golden)
//   GOLDEN_DIR=/some/golden node --test test/          # vectors written now (tests/web/test_preprocess.py)
//   KIT_RGBA_CASES=cases.json node --test test/        # transparency composited on white, against Pillow
//   KIT_RECORDS=records.json node --test test/         # the kit record read from .tflite/.onnx files, against Python,
//                                                      # and their content digest checked as edge/seal.py does

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { readKitRecord, verifyContentDigest } from "../kit/metadata.js";
import {
  RgbImage, dequantize, isQuantized, parseSpec, quantize, resizeAndCrop, softmax, toInput, topK,
} from "../kit/preprocess.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const GOLDEN = process.env.GOLDEN_DIR || join(HERE, "..", "..", "android_demo", "core", "src", "test", "resources", "golden");
const FLOAT_TOLERANCE = 1e-6;

const index = JSON.parse(readFileSync(join(GOLDEN, "golden.json"), "utf8"));
const images = new Map(index.images.map((e) => [e.name, new RgbImage(e.width, e.height, new Uint8Array(readFileSync(join(GOLDEN, e.file))))]));

function firstDifference(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}

test("golden vectors are there", () => {
  assert.ok(index.images.length > 0 && index.resize_cases.length > 0, `no cases in ${GOLDEN}`);
});

for (const c of index.resize_cases) {
  test(`resize ${c.file}`, () => {
    const got = resizeAndCrop(images.get(c.image), parseSpec(c.spec));
    const want = new Uint8Array(readFileSync(join(GOLDEN, c.file)));
    assert.equal(got.width, c.width);
    assert.equal(got.height, c.height);
    const at = firstDifference(got.rgb, want);
    assert.equal(at, -1, `first differing byte ${at}: ${got.rgb[at]} != ${want[at]}`);
  });
}

function typed(buffer, dtype) {
  const bytes = new Uint8Array(buffer).slice();  // aligned copy; the files are little-endian, as is every JS engine here
  if (dtype === "float32") return new Float32Array(bytes.buffer);
  if (dtype === "int8") return new Int8Array(bytes.buffer);
  if (dtype === "uint8") return bytes;
  throw new Error(`unexpected dtype ${dtype}`);
}

for (const model of index.models) {
  const metadata = JSON.parse(model.metadata);
  const spec = parseSpec(metadata.preprocessing);
  for (const c of model.cases) {
    test(`model input ${model.name} ${c.image}`, () => {
      const x = toInput(images.get(c.image), spec);
      const want = typed(readFileSync(join(GOLDEN, c.input_file)), model.input.dtype);
      if (isQuantized(model.input)) {
        const got = quantize(x, model.input);
        const at = firstDifference(got, want);
        assert.equal(at, -1, `first differing element ${at}: ${got[at]} != ${want[at]}`);
      } else {
        assert.equal(x.length, want.length);
        let worst = 0;
        for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - want[i]));
        assert.ok(worst <= FLOAT_TOLERANCE, `float input differs by ${worst}`);
      }
    });
    test(`model output ${model.name} ${c.image}: top-5 from the raw output`, () => {
      const raw = typed(readFileSync(join(GOLDEN, c.output_file)), model.output.dtype);
      const top = topK(softmax(dequantize(raw, model.output)), metadata.labels, 5);
      assert.deepEqual(top.map((p) => p.index), c.top.map((p) => p.index));
      assert.deepEqual(top.map((p) => p.label), c.top.map((p) => p.label));
      for (let i = 0; i < top.length; i++) assert.ok(Math.abs(top[i].probability - c.top[i].probability) <= 1e-12);
    });
  }
}

test("quantize rounds half to even and clamps, as numpy", () => {
  const tensor = { dtype: "int8", scale: 0.5, zero_point: -1 };
  assert.deepEqual(Array.from(quantize(Float32Array.from([0.25, 0.75, -0.25, 1000, -1000]), tensor)), [-1, 1, -1, 127, -128]);
  assert.throws(() => quantize(new Float32Array(1), { dtype: "float32" }), /uint8\/int8/);
});

test("a spec the kit would refuse is refused", () => {
  assert.throws(() => parseSpec({ interpolation: "lanczos" }), /interpolation/);
  assert.throws(() => parseSpec({ std: [1, 0, 1] }), /std/);
  assert.throws(() => parseSpec("bicubic"), /JSON object/);
});

test("an image too small for the crop is refused", () => {
  const spec = parseSpec({ height: 4, width: 4, resize: "shorter_side", crop_fraction: 1 });
  assert.throws(() => resizeAndCrop(new RgbImage(1, 1, new Uint8Array(3)), { ...spec, height: 4, width: 8 }), /too small/);
});

if (process.env.KIT_RGBA_CASES) {
  const cases = JSON.parse(readFileSync(process.env.KIT_RGBA_CASES, "utf8"));
  test("transparency is composited on white as Pillow does", () => {
    for (const c of cases) {
      const got = RgbImage.fromRgba(c.width, c.height, Uint8Array.from(c.rgba));
      assert.deepEqual(Array.from(got.rgb), c.rgb);
    }
  });
}

if (process.env.KIT_RECORDS) {
  const records = JSON.parse(readFileSync(process.env.KIT_RECORDS, "utf8"));
  for (const r of records) {
    test(`kit record read from ${r.path}`, async () => {
      const bytes = new Uint8Array(readFileSync(r.path));
      if (r.error) {
        await assert.rejects(async () => verifyContentDigest(bytes, r.path, readKitRecord(bytes, r.path).record), new RegExp(r.error));
      } else {
        const found = readKitRecord(bytes, r.path);
        assert.equal(found.format, r.format);
        assert.deepEqual(found.record, r.record);
        assert.equal(await verifyContentDigest(bytes, r.path, found.record), r.sealed);
      }
    });
  }
}
