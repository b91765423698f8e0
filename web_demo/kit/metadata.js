// The kit's record inside a model file, read from the bytes with no runtime (as edge/tflite_file.py and
// edge/onnx_file.py do in Python): in a .tflite file a Model.metadata entry named "regnety_edge_kit" pointing at a
// buffer of JSON; in an .onnx file a metadata_props entry of that key. Every read is bounds-checked: a damaged or
// foreign file is a KitFileError with one clear message, never an exception from deep inside.

export const METADATA_NAME = "regnety_edge_kit";
const TFLITE_IDENTIFIER = "TFL3";

export class KitFileError extends Error {
  /** kind: "not_a_model" | "no_metadata" | "bad_metadata" */
  constructor(kind, message) {
    super(message);
    this.name = "KitFileError";
    this.kind = kind;
  }
}

const decoder = new TextDecoder("utf-8", { fatal: true });

function text(bytes, what, name) {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new KitFileError("bad_metadata", `${name}: the ${what} is not valid UTF-8 text; re-convert the model`);
  }
}

// ---- TFLite: a FlatBuffer (tensorflow/lite/schema/schema.fbs) --------------------------------------------------

const MODEL_BUFFERS = 4, MODEL_METADATA = 6;
const METADATA_ENTRY_NAME = 0, METADATA_ENTRY_BUFFER = 1;
const BUFFER_DATA = 0, BUFFER_OFFSET = 1, BUFFER_SIZE = 2;

class FlatReader {
  constructor(bytes, name) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.name = name;
  }

  check(pos, size) {
    if (!Number.isSafeInteger(pos) || pos < 0 || pos + size > this.bytes.length) {
      throw new KitFileError("not_a_model", `${this.name}: truncated or malformed .tflite (offset ${pos} is outside ` +
        `the ${this.bytes.length}-byte file); export or copy it again`);
    }
  }

  u16(pos) { this.check(pos, 2); return this.view.getUint16(pos, true); }
  u32(pos) { this.check(pos, 4); return this.view.getUint32(pos, true); }
  i32(pos) { this.check(pos, 4); return this.view.getInt32(pos, true); }
  u64(pos) { this.check(pos, 8); return Number(this.view.getBigUint64(pos, true)); }

  field(table, index) {
    const vtable = table - this.i32(table);
    const size = this.u16(vtable);
    const slot = 4 + 2 * index;
    if (slot + 2 > size) return null;
    const offset = this.u16(vtable + slot);
    return offset ? table + offset : null;
  }

  vector(pos) {
    const start = pos + this.u32(pos);
    const length = this.u32(start);
    return [start + 4, length];
  }

  tables(table, index) {
    const pos = this.field(table, index);
    if (pos === null) return [];
    const [start, length] = this.vector(pos);
    this.check(start, 4 * length);
    return Array.from({ length }, (_, i) => start + 4 * i + this.u32(start + 4 * i));
  }

  slice(start, length) {
    this.check(start, length);
    return this.bytes.subarray(start, start + length);
  }

  bufferBytes(buffer) {
    const pos = this.field(buffer, BUFFER_DATA);
    if (pos !== null) {
      const [start, length] = this.vector(pos);
      return this.slice(start, length);
    }
    const off = this.field(buffer, BUFFER_OFFSET), size = this.field(buffer, BUFFER_SIZE);
    if (off === null || size === null) return new Uint8Array(0);
    return this.slice(this.u64(off), this.u64(size));  // large models keep buffer data after the FlatBuffer
  }
}

export function isTflite(bytes) {
  return bytes.length >= 8 && String.fromCharCode(...bytes.subarray(4, 8)) === TFLITE_IDENTIFIER;
}

/** Every named metadata entry of a .tflite file: Map name -> bytes. */
export function tfliteMetadata(bytes, name = "model") {
  const r = new FlatReader(bytes, name);
  const root = r.u32(0);
  const buffers = r.tables(root, MODEL_BUFFERS);
  const out = new Map();
  for (const entry of r.tables(root, MODEL_METADATA)) {
    const namePos = r.field(entry, METADATA_ENTRY_NAME);
    const indexPos = r.field(entry, METADATA_ENTRY_BUFFER);
    if (namePos === null || indexPos === null) continue;
    const index = r.u32(indexPos);
    if (index >= buffers.length) {
      throw new KitFileError("not_a_model", `${name}: malformed .tflite (metadata points at buffer ${index} of ${buffers.length})`);
    }
    const [start, length] = r.vector(namePos);
    out.set(text(r.slice(start, length), "name of a metadata entry", name), r.bufferBytes(buffers[index]));
  }
  return out;
}

const MODEL_SUBGRAPHS = 2, SUBGRAPH_TENSORS = 0, TENSOR_SHAPE = 0, TENSOR_SHAPE_SIGNATURE = 7;

/**
 * A copy of a .tflite file whose dynamic batch dimension is fixed to the one its tensors were allocated with (1):
 * every tensor's shape_signature entry -1 becomes the matching shape entry. The kit's files declare a dynamic batch
 * (shape_signature [-1, 224, 224, 3]); LiteRT.js has no call to resize an input and refuses a buffer of [1, 224, 224, 3]
 * against [-1, 224, 224, 3]. What the Python interpreter does by default (batch 1), in place, same length.
 * Returns [bytes, number of entries fixed].
 */
export function fixDynamicBatch(bytes, name = "model") {
  const out = bytes.slice();
  const r = new FlatReader(out, name);
  const root = r.u32(0);
  let fixed = 0;
  for (const graph of r.tables(root, MODEL_SUBGRAPHS)) {
    for (const tensor of r.tables(graph, SUBGRAPH_TENSORS)) {
      const sigPos = r.field(tensor, TENSOR_SHAPE_SIGNATURE);
      const shapePos = r.field(tensor, TENSOR_SHAPE);
      if (sigPos === null || shapePos === null) continue;
      const [sig, sigLength] = r.vector(sigPos);
      const [shape, shapeLength] = r.vector(shapePos);
      if (sigLength !== shapeLength) continue;
      for (let i = 0; i < sigLength; i++) {
        if (r.i32(sig + 4 * i) === -1 && r.i32(shape + 4 * i) > 0) {
          r.view.setInt32(sig + 4 * i, r.i32(shape + 4 * i), true);
          fixed++;
        }
      }
    }
  }
  return [out, fixed];
}

// ---- ONNX: one protobuf ModelProto (onnx/onnx.proto) -------------------------------------------------------------

const MODEL_IR_VERSION = 1, MODEL_GRAPH = 7, MODEL_METADATA_PROPS = 14;
const ENTRY_KEY = 1, ENTRY_VALUE = 2;

class ProtoReader {
  constructor(bytes, name) {
    this.bytes = bytes;
    this.name = name;
  }

  error(detail) {
    return new KitFileError("not_a_model", `${this.name}: not an ONNX or TFLite model (${detail})`);
  }

  varint(pos, end) {
    let value = 0, scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw this.error(`a number is cut off at byte ${pos}`);
      const byte = this.bytes[pos++];
      value += (byte & 0x7f) * scale;  // exact below 2**53; larger numbers only matter as lengths, which then fail
      if (byte < 0x80) return [value, pos];
      scale *= 128;
    }
    throw this.error(`a number longer than 10 bytes ends at byte ${pos}`);
  }

  /** Yields [field number, wire type, value or start, end of the field]. */
  *fields(start, end) {
    let pos = start;
    while (pos < end) {
      const at = pos;
      let tag;
      [tag, pos] = this.varint(pos, end);
      const number = Math.floor(tag / 8), wire = tag % 8;
      if (number < 1 || number > (1 << 29) - 1) throw this.error(`field number ${number} at byte ${at}`);
      let value;
      if (wire === 0) {
        [value, pos] = this.varint(pos, end);
      } else if (wire === 2) {
        let length;
        [length, value] = this.varint(pos, end);
        if (length > end - value) throw this.error(`a field of ${length} bytes at byte ${value} runs past its end`);
        pos = value + length;
      } else if (wire === 1 || wire === 5) {
        const size = wire === 1 ? 8 : 4;
        if (size > end - pos) throw this.error(`a ${size}-byte number at byte ${pos} runs past its end`);
        value = pos;
        pos += size;
      } else {
        throw this.error(`wire type ${wire} (field ${number}) at byte ${at}`);
      }
      yield [number, wire, value, pos];
    }
  }
}

/** The metadata_props of an .onnx file: Map key -> value (text); a repeated key keeps its last value. */
export function onnxMetadata(bytes, name = "model") {
  const r = new ProtoReader(bytes, name);
  const props = new Map();
  let sawModel = false;
  for (const [number, wire, value, end] of r.fields(0, bytes.length)) {
    if ((number === MODEL_IR_VERSION && wire === 0) || (number === MODEL_GRAPH && wire === 2)) sawModel = true;
    if (number !== MODEL_METADATA_PROPS || wire !== 2) continue;
    let key = "", entry = "";
    for (const [n, w, v, e] of r.fields(value, end)) {
      if (w !== 2) continue;
      if (n === ENTRY_KEY) key = text(bytes.subarray(v, e), "key of a metadata entry", name);
      else if (n === ENTRY_VALUE) entry = bytes.subarray(v, e);
    }
    props.set(key, entry);
  }
  if (!sawModel) throw r.error("it has neither an IR version nor a graph");
  const out = new Map();
  for (const [key, entry] of props) out.set(key, entry instanceof Uint8Array ? text(entry, `value of ${key}`, name) : entry);
  return out;
}

// ---- both ----------------------------------------------------------------------------------------------------------

/** {format: "tflite" | "onnx", record}: the file's kit record, checked for what the page needs. */
export function readKitRecord(bytes, name = "model") {
  if (bytes.length < 16) {
    throw new KitFileError("not_a_model", `${name}: ${bytes.length} bytes is too small to be a model; pick a .tflite or .onnx file`);
  }
  let format, raw;
  if (isTflite(bytes)) {
    format = "tflite";
    raw = tfliteMetadata(bytes, name).get(METADATA_NAME);
    if (raw !== undefined) raw = text(raw, `${METADATA_NAME} metadata`, name);
  } else {
    format = "onnx";
    raw = onnxMetadata(bytes, name).get(METADATA_NAME);
  }
  if (raw === undefined) {
    throw new KitFileError("no_metadata", `${name}: a ${format === "tflite" ? "TFLite" : "ONNX"} model without the kit's ` +
      "metadata (labels, preprocessing); convert it with python -m converters.tflite or converters.onnx");
  }
  let record;
  try {
    record = JSON.parse(raw);
  } catch {
    throw new KitFileError("bad_metadata", `${name}: its ${METADATA_NAME} metadata is not valid JSON; re-convert the model`);
  }
  if (record === null || typeof record !== "object" || Array.isArray(record)) {
    throw new KitFileError("bad_metadata", `${name}: its ${METADATA_NAME} metadata is not a JSON object; re-convert the model`);
  }
  return { format, record };
}

// ---- the content digest -----------------------------------------------------------------------------------------------

export const DIGEST_FIELD = "content_sha256";
const SEALED_SINCE = 2;  // the first metadata_version whose records carry the digest (edge/seal.py)
const NEEDLE = new TextEncoder().encode(`"${DIGEST_FIELD}":"`);
const HEX = new Set(Array.from("0123456789abcdef", (c) => c.charCodeAt(0)));

function digestFields(bytes) {
  const found = [];
  const first = NEEDLE[0];
  for (let i = bytes.indexOf(first); i !== -1 && i + NEEDLE.length + 65 <= bytes.length; i = bytes.indexOf(first, i + 1)) {
    let match = true;
    for (let j = 1; j < NEEDLE.length && match; j++) match = bytes[i + j] === NEEDLE[j];
    if (!match) continue;
    const start = i + NEEDLE.length;
    let hex = bytes[start + 64] === 0x22;  // the closing quote
    for (let j = 0; j < 64 && hex; j++) hex = HEX.has(bytes[start + j]);
    if (hex) found.push(start);
  }
  return found;
}

/**
 * The kit's content digest, checked as edge/seal.py checks it: the SHA-256 of the whole file with the record's 64 digest
 * characters put back to zeros must be those characters. Resolves true when it matches, false for a file without one
 * (an older kit's); a KitFileError ("damaged") when the bytes changed or a sealed record lost its digest.
 */
export async function verifyContentDigest(bytes, name, record) {
  const damaged = (why) => new KitFileError("damaged", `${name}: the file is damaged (${why}); copy it again or re-convert it`);
  const found = digestFields(bytes);
  const sealed = Number.isInteger(record?.metadata_version) && record.metadata_version >= SEALED_SINCE;
  if (!found.length) {
    if (sealed || (record && DIGEST_FIELD in record)) throw damaged("its record's content digest is missing or unreadable");
    return false;
  }
  if (found.length > 1) throw damaged(`it holds ${found.length} content digests, where the kit writes one`);
  const start = found[0];
  const expected = String.fromCharCode(...bytes.subarray(start, start + 64));
  const zeroed = bytes.slice();
  zeroed.fill(0x30, start, start + 64);  // "0"
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", zeroed));
  const actual = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (actual !== expected || (record && record[DIGEST_FIELD] !== expected)) {
    throw damaged("its bytes do not match the content digest the converter recorded");
  }
  return true;
}

/** What the page needs from a record, checked: labels, preprocessing, io (raises KitFileError). */
export function classifierFacts(record, name = "model") {
  if (!Array.isArray(record.labels) || !record.preprocessing) {
    throw new KitFileError("no_metadata", `${name}: its kit metadata has no labels or preprocessing; convert it with ` +
      "python -m converters.tflite or converters.onnx");
  }
  if (record.io && record.io.output_kind === "features") {
    throw new KitFileError("bad_metadata", `${name}: a feature extractor (converted with --head none): it outputs ` +
      "feature vectors, not labels");
  }
  return { labels: record.labels, preprocessing: record.preprocessing, io: record.io || {} };
}
