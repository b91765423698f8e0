// The kit's preprocessing (edge/images.py), in JavaScript: RGB bytes -> the model's input tensor.
//
// Resizing gives the same bytes as Pillow's Image.resize for 8-bit RGB, the rule the Python kit and the
// Android core (android_demo/core, Resampler.java) follow: a separable convolution whose filter is
// stretched by the scale when shrinking, weights normalised per output sample and held in 22-bit fixed
// point, a horizontal pass over only the rows the vertical pass reads, each pass rounding and clamping to
// 8 bits; NEAREST walks the source as Pillow's affine nearest-neighbour transform does. Values are
// computed in float32 where numpy computes in float32 (Math.fround after each operation), so float inputs
// match the Python kit to the last bit or so and integer inputs byte for byte (tests: web_demo/test/).
//
// No browser API is used here: the module runs in the page and under Node's test runner alike.

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);

export const RESIZE_RULES = ["shorter_side", "stretch"];
export const INTERPOLATIONS = ["bilinear", "bicubic", "nearest"];

export class PreprocessError extends Error {
  constructor(message) {
    super(message);
    this.name = "PreprocessError";
  }
}

/** An 8-bit RGB image: width, height and width*height*3 bytes, row-major, RGB interleaved. */
export class RgbImage {
  constructor(width, height, rgb) {
    if (!(width >= 1 && height >= 1) || rgb.length !== width * height * 3) {
      throw new PreprocessError(`an RGB image of ${width}x${height} needs ${width * height * 3} bytes, got ${rgb.length}`);
    }
    this.width = width;
    this.height = height;
    this.rgb = rgb;
  }

  /** From RGBA bytes (a canvas's ImageData, not premultiplied): transparency composited on white, as the kit does. */
  static fromRgba(width, height, rgba) {
    const n = width * height;
    if (rgba.length !== n * 4) {
      throw new PreprocessError(`RGBA pixels of ${width}x${height} need ${n * 4} bytes, got ${rgba.length}`);
    }
    const rgb = new Uint8Array(n * 3);
    for (let i = 0, j = 0; i < n; i++, j += 3) {
      const a = rgba[i * 4 + 3];
      for (let c = 0; c < 3; c++) {
        const v = rgba[i * 4 + c];
        rgb[j + c] = a === 255 ? v : compositeOnWhite(v, a);
      }
    }
    return new RgbImage(width, height, rgb);
  }

  crop(left, top, width, height) {
    const out = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      const from = ((top + y) * this.width + left) * 3;
      out.set(this.rgb.subarray(from, from + width * 3), y * width * 3);
    }
    return new RgbImage(width, height, out);
  }
}

function compositeOnWhite(v, a) {
  // Pillow's ImagingAlphaComposite (7-bit fixed point) with an opaque white background, as edge/images.py to_rgb
  if (a === 0) return 255;
  const coef1 = a * 128;
  const coef2 = (255 - a) * 128;
  const tmp = v * coef1 + 255 * coef2 + (0x80 << 7);
  return (((tmp >> 8) + tmp) >> 8) >> 7;
}

/** The spec as the file's record holds it (edge/preprocessing.py's PreprocessSpec.to_dict), checked, defaults filled. */
export function parseSpec(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new PreprocessError("the preprocessing spec must be a JSON object");
  }
  const spec = {
    height: 224, width: 224, resize: "shorter_side", crop_fraction: 0.875, interpolation: "bicubic",
    mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], normalize_in_model: false, resize_in_model: false,
    channel_order: "RGB", ...data,
  };
  const problems = [];
  if (!(Number.isInteger(spec.height) && Number.isInteger(spec.width) && spec.height >= 1 && spec.width >= 1)) {
    problems.push(`size must be positive integers, got ${spec.height}x${spec.width}`);
  }
  if (!RESIZE_RULES.includes(spec.resize)) problems.push(`resize must be one of ${RESIZE_RULES.join(", ")}, got ${spec.resize}`);
  if (!(spec.crop_fraction > 0 && spec.crop_fraction <= 1)) problems.push(`crop_fraction must be in (0, 1], got ${spec.crop_fraction}`);
  if (!INTERPOLATIONS.includes(spec.interpolation)) {
    problems.push(`interpolation must be one of ${INTERPOLATIONS.join(", ")}, got ${spec.interpolation}`);
  }
  if (!Array.isArray(spec.mean) || !Array.isArray(spec.std) || spec.mean.length !== 3 || spec.std.length !== 3) {
    problems.push("mean and std need three values each");
  } else if (spec.std.some((s) => !(s > 0))) {
    problems.push(`std values must be positive, got ${spec.std}`);
  }
  if (!["RGB", "BGR"].includes(spec.channel_order)) problems.push(`channel_order must be RGB or BGR, got ${spec.channel_order}`);
  if (problems.length) throw new PreprocessError("invalid preprocessing spec: " + problems.join("; "));
  return spec;
}

/** Shorter-side length before the centre crop: int(min(height, width) / crop_fraction), as the kit (timm). */
export function resizeSize(spec) {
  return Math.trunc(Math.min(spec.height, spec.width) / spec.crop_fraction);
}

function filterValue(x, bicubic) {
  if (x < 0) x = -x;
  if (!bicubic) return x < 1 ? 1 - x : 0;
  const a = -0.5;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per output sample along one axis: first input index, input count and fixed-point weights (ksize each). */
function coefficients(inSize, outSize, support0, bicubic) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = support0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filterValue((x + xmin - center + 0.5) * ss, bicubic);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? k[x] / ww : k[x];
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v) {
  const s = v >> PRECISION_BITS;
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

function separable(image, outW, outH, support, bicubic) {
  const horiz = coefficients(image.width, outW, support, bicubic);
  const vert = coefficients(image.height, outH, support, bicubic);
  let src = image.rgb;
  let srcW = image.width;
  if (outW !== image.width) {
    // horizontal pass over the rows the vertical pass reads (all of them when the height stays)
    const yFirst = outH !== image.height ? vert.bounds[0] : 0;
    const yLast = outH !== image.height ? vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1] : image.height;
    const rows = yLast - yFirst;
    const tmp = new Uint8Array(outW * rows * 3);
    for (let y = 0; y < rows; y++) {
      const rowBase = (y + yFirst) * srcW * 3;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = horiz.bounds[xx * 2];
        const xmax = horiz.bounds[xx * 2 + 1];
        const kBase = xx * horiz.ksize;
        let s0 = HALF, s1 = HALF, s2 = HALF;
        for (let x = 0; x < xmax; x++) {
          const k = horiz.kk[kBase + x];
          const p = rowBase + (x + xmin) * 3;
          s0 = (s0 + src[p] * k) | 0;
          s1 = (s1 + src[p + 1] * k) | 0;
          s2 = (s2 + src[p + 2] * k) | 0;
        }
        const o = (y * outW + xx) * 3;
        tmp[o] = clip8(s0);
        tmp[o + 1] = clip8(s1);
        tmp[o + 2] = clip8(s2);
      }
    }
    for (let i = 0; i < outH; i++) vert.bounds[i * 2] -= yFirst;
    src = tmp;
    srcW = outW;
  }
  if (outH === image.height) {
    return new RgbImage(srcW, outH, src === image.rgb ? src.slice() : src);
  }
  const out = new Uint8Array(outW * outH * 3);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = vert.bounds[yy * 2];
    const ymax = vert.bounds[yy * 2 + 1];
    const kBase = yy * vert.ksize;
    for (let xx = 0; xx < outW; xx++) {
      let s0 = HALF, s1 = HALF, s2 = HALF;
      for (let y = 0; y < ymax; y++) {
        const k = vert.kk[kBase + y];
        const p = ((y + ymin) * srcW + xx) * 3;
        s0 = (s0 + src[p] * k) | 0;
        s1 = (s1 + src[p + 1] * k) | 0;
        s2 = (s2 + src[p + 2] * k) | 0;
      }
      const o = (yy * outW + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return new RgbImage(outW, outH, out);
}

function nearest(image, outW, outH) {
  const ax = image.width / outW;
  const ay = image.height / outH;
  const xs = new Int32Array(outW);
  let v = ax * 0.5;
  for (let x = 0; x < outW; x++, v += ax) xs[x] = Math.min(Math.trunc(v), image.width - 1);
  const out = new Uint8Array(outW * outH * 3);
  let w = ay * 0.5;
  for (let y = 0; y < outH; y++, w += ay) {
    const sy = Math.min(Math.trunc(w), image.height - 1);
    for (let x = 0; x < outW; x++) {
      const from = (sy * image.width + xs[x]) * 3;
      const to = (y * outW + x) * 3;
      out[to] = image.rgb[from];
      out[to + 1] = image.rgb[from + 1];
      out[to + 2] = image.rgb[from + 2];
    }
  }
  return new RgbImage(outW, outH, out);
}

/** Pillow's Image.resize((outW, outH), filter) for an 8-bit RGB image. */
export function resize(image, outW, outH, interpolation) {
  if (!(outW >= 1 && outH >= 1)) throw new PreprocessError(`resize target must be positive, got ${outW}x${outH}`);
  if (outW === image.width && outH === image.height) return new RgbImage(image.width, image.height, image.rgb.slice());
  switch (interpolation) {
    case "nearest": return nearest(image, outW, outH);
    case "bilinear": return separable(image, outW, outH, 1, false);
    case "bicubic": return separable(image, outW, outH, 2, true);
    default: throw new PreprocessError(`interpolation "${interpolation}" is not one of ${INTERPOLATIONS.join(", ")}`);
  }
}

/** Python's round() of a float: half to even. */
function roundHalfEven(x) {
  const r = Math.round(x);  // half up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export const MAX_RESIZED_PIXELS = 64_000_000;

/** Resize (and centre-crop) to the spec's size, as edge/images.py's resize_and_crop. */
export function resizeAndCrop(image, spec) {
  if (spec.resize === "stretch") return resize(image, spec.width, spec.height, spec.interpolation);
  const short = resizeSize(spec);
  const { width: w, height: h } = image;
  let newW, newH;
  if (w <= h) {
    newW = short;
    newH = Math.trunc((short * h) / w);
  } else {
    newW = Math.trunc((short * w) / h);
    newH = short;
  }
  if (newW * newH > MAX_RESIZED_PIXELS) {
    throw new PreprocessError(`image of ${w}x${h} is too elongated: its shorter side resized to ${short} makes it ` +
      `${newW}x${newH} pixels; crop it to a less extreme aspect ratio first`);
  }
  const resized = newW === w && newH === h ? image : resize(image, newW, newH, spec.interpolation);
  const top = roundHalfEven((newH - spec.height) / 2);
  const left = roundHalfEven((newW - spec.width) / 2);
  if (top < 0 || left < 0) {
    throw new PreprocessError(`image of ${w}x${h} is too small for a ${spec.width}x${spec.height} crop after resizing`);
  }
  return resized.crop(left, top, spec.width, spec.height);
}

/** The float32 model input, (height, width, 3) row-major: normalised unless the model normalises (edge/images.py to_input). */
export function toInput(image, spec) {
  return cropToInput(resizeAndCrop(image, spec), spec);
}

/** toInput's second half: an image already resized and cropped to the spec's size -> the float32 model input. */
export function cropToInput(crop, spec) {
  const bgr = spec.channel_order === "BGR";
  const out = new Float32Array(crop.rgb.length);
  const f = Math.fround;
  const mean = spec.mean.map(f);
  const std = spec.std.map(f);
  const n255 = f(255);
  for (let i = 0; i < crop.rgb.length; i += 3) {
    for (let c = 0; c < 3; c++) {
      const src = bgr ? 2 - c : c;
      const p = crop.rgb[i + src];
      // numpy's float32 arithmetic: (pixels / float32(255) - mean) / std, each step rounded to float32
      out[i + c] = spec.normalize_in_model ? p : f(f(f(p / n255) - mean[src]) / std[src]);
    }
  }
  return out;
}

const LIMITS = { uint8: [0, 255], int8: [-128, 127] };

/** A tensor's description: {dtype, shape, scale, zero_point} (the record's io.input / io.output). */
export function isQuantized(tensor) {
  return (tensor.dtype === "uint8" || tensor.dtype === "int8") && tensor.scale > 0;
}

/** float -> the tensor's integers, as edge/runtime.py quantize: round(x / scale) half to even, + zero point, clamped. */
export function quantize(values, tensor) {
  const limits = LIMITS[tensor.dtype];
  if (!limits || !(tensor.scale > 0)) {
    throw new PreprocessError(`quantize() is for uint8/int8 tensors with a scale; this one is ${tensor.dtype}` +
      (limits ? " without a scale: re-convert it with the kit" : ""));
  }
  const scale = Math.fround(tensor.scale);
  const out = tensor.dtype === "uint8" ? new Uint8Array(values.length) : new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const q = roundHalfEven(Math.fround(values[i] / scale)) + tensor.zero_point;
    out[i] = q < limits[0] ? limits[0] : q > limits[1] ? limits[1] : q;
  }
  return out;
}

/** The tensor's values as float32: integers as (q - zero point) * scale, as edge/runtime.py dequantize. */
export function dequantize(values, tensor) {
  if (!isQuantized(tensor)) return Float32Array.from(values);
  const scale = Math.fround(tensor.scale);
  return Float32Array.from(values, (q) => Math.fround(Math.fround(q - tensor.zero_point) * scale));
}

/** Softmax in double precision, the maximum subtracted first. */
export function softmax(logits) {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const e = Array.from(logits, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** The k most probable classes, highest first; equal probabilities keep the lower index first. */
export function topK(probabilities, labels, k = 5) {
  if (labels.length !== probabilities.length) {
    throw new PreprocessError(`${labels.length} labels for ${probabilities.length} outputs`);
  }
  const order = probabilities.map((_, i) => i).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
  return order.slice(0, Math.max(1, k)).map((i) => ({ label: labels[i], index: i, probability: probabilities[i] }));
}
