package org.regnetykit.core;

import java.nio.charset.StandardCharsets;

/**
 * Reads the kit's metadata record (a named buffer, {@value #NAME}) out of a .tflite file's bytes, with
 * every offset bounds-checked, so a truncated or foreign file gives a clear message instead of a crash.
 * The same reader as the Python kit's {@code edge/tflite_file.py}.
 */
public final class TfliteMetadata {
    public static final String NAME = "regnety_edge_kit";
    private static final int MODEL_BUFFERS = 4, MODEL_METADATA = 6;
    private static final int METADATA_NAME = 0, METADATA_BUFFER = 1;
    private static final int BUFFER_DATA = 0, BUFFER_OFFSET = 1, BUFFER_SIZE = 2;

    private final byte[] data;

    private TfliteMetadata(byte[] data) {
        this.data = data;
    }

    /** The kit's metadata JSON embedded in a .tflite model; throws ModelException when absent or malformed. */
    public static String read(byte[] model) {
        if (model == null || model.length < 16) {
            throw new ModelException("the model file is " + (model == null ? 0 : model.length)
                    + " bytes: too small to be a .tflite model; copy the artifact again");
        }
        String id = new String(model, 4, 4, StandardCharsets.ISO_8859_1);
        if (!id.equals("TFL3")) {
            throw new ModelException("not a .tflite model (file identifier '" + id + "', expected 'TFL3')");
        }
        String json = new TfliteMetadata(model).find(NAME);
        if (json == null) {
            throw new ModelException("the model has no " + NAME + " metadata (labels, preprocessing); convert it "
                    + "with python -m converters.tflite, which embeds them");
        }
        return json;
    }

    private ModelException truncated(long offset) {
        return new ModelException("truncated or malformed .tflite (offset " + offset + " is outside the "
                + data.length + "-byte file); copy the artifact again");
    }

    private long u32(long pos) {
        if (pos < 0 || pos + 4 > data.length) {
            throw truncated(pos);
        }
        int p = (int) pos;
        return (data[p] & 0xFFL) | (data[p + 1] & 0xFFL) << 8 | (data[p + 2] & 0xFFL) << 16 | (data[p + 3] & 0xFFL) << 24;
    }

    private int u16(long pos) {
        if (pos < 0 || pos + 2 > data.length) {
            throw truncated(pos);
        }
        int p = (int) pos;
        return (data[p] & 0xFF) | (data[p + 1] & 0xFF) << 8;
    }

    private long u64(long pos) {
        return u32(pos) | u32(pos + 4) << 32;
    }

    /** Absolute position of a table's field, or -1 when absent. */
    private long field(long table, int index) {
        long vtable = table - (int) u32(table);  // soffset: signed
        int vtableSize = u16(vtable);
        int slot = 4 + 2 * index;
        if (slot + 2 > vtableSize) {
            return -1;
        }
        int offset = u16(vtable + slot);
        return offset == 0 ? -1 : table + offset;
    }

    private long[] tables(long table, int index) {
        long pos = field(table, index);
        if (pos < 0) {
            return new long[0];
        }
        long start = pos + u32(pos);
        long length = u32(start);
        if (start + 4 + 4 * length > data.length) {
            throw truncated(start);
        }
        long[] out = new long[(int) length];
        for (int i = 0; i < length; i++) {
            long item = start + 4 + 4L * i;
            out[i] = item + u32(item);
        }
        return out;
    }

    private byte[] bytes(long vectorField) {
        long start = vectorField + u32(vectorField);
        long length = u32(start);
        return slice(start + 4, length);
    }

    private byte[] slice(long start, long length) {
        if (start < 0 || length < 0 || start + length > data.length) {
            throw truncated(start + length);
        }
        byte[] out = new byte[(int) length];
        System.arraycopy(data, (int) start, out, 0, (int) length);
        return out;
    }

    private String find(String wanted) {
        long root = u32(0);
        long[] buffers = tables(root, MODEL_BUFFERS);
        for (long entry : tables(root, MODEL_METADATA)) {
            long namePos = field(entry, METADATA_NAME);
            long indexPos = field(entry, METADATA_BUFFER);
            if (namePos < 0 || indexPos < 0) {
                continue;
            }
            if (!new String(bytes(namePos), StandardCharsets.UTF_8).equals(wanted)) {
                continue;
            }
            long index = u32(indexPos);
            if (index >= buffers.length) {
                throw new ModelException("malformed .tflite (metadata points at buffer " + index + " of "
                        + buffers.length + "); re-convert the model");
            }
            return new String(bufferBytes(buffers[(int) index]), StandardCharsets.UTF_8);
        }
        return null;
    }

    private byte[] bufferBytes(long buffer) {
        long pos = field(buffer, BUFFER_DATA);
        if (pos >= 0) {
            return bytes(pos);
        }
        long off = field(buffer, BUFFER_OFFSET), size = field(buffer, BUFFER_SIZE);
        if (off < 0 || size < 0) {
            return new byte[0];
        }
        return slice(u64(off), u64(size));  // large models keep buffer data after the FlatBuffer
    }
}
