package org.regnetykit.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/** Bad models and inputs give one clear ModelException; the small pieces do what they say. */
public class CoreErrorsTest {
    private static final String META = "{\"labels\": [\"a\", \"b\", \"c\"], \"precision\": \"int8\", "
            + "\"preprocessing\": {\"height\": 4, \"width\": 4, \"resize\": \"stretch\", \"crop_fraction\": 1.0, "
            + "\"interpolation\": \"bilinear\", \"mean\": [0.5, 0.5, 0.5], \"std\": [0.25, 0.25, 0.25], "
            + "\"normalize_in_model\": false, \"channel_order\": \"RGB\"}, \"io\": {\"output_kind\": \"logits\"}}";
    private static final TensorSpec IN = TensorSpec.of(new int[] {1, 4, 4, 3}, "UINT8", 0.0078125f, 128);

    private static String message(Runnable r) {
        return assertThrows(ModelException.class, r::run).getMessage();
    }

    /** A valid FlatBuffer with the TFL3 identifier and an empty root table: a model with no metadata. */
    private static byte[] emptyModel() {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(12).put("TFL3".getBytes()).putShort((short) 4).putShort((short) 4).putInt(4);
        return b.array();
    }

    @Test
    public void modelWithoutMetadata() {
        assertTrue(message(() -> TfliteMetadata.read(emptyModel())).contains("has no regnety_edge_kit metadata"));
    }

    @Test
    public void truncatedAndForeignFiles() {
        byte[] model = emptyModel();
        model[0] = 100;  // root table offset past the end
        assertTrue(message(() -> TfliteMetadata.read(model)).contains("truncated or malformed"));
        byte[] onnx = new byte[64];
        assertTrue(message(() -> TfliteMetadata.read(onnx)).contains("not a .tflite model"));
        assertTrue(message(() -> TfliteMetadata.read(new byte[3])).contains("too small"));
    }

    @Test
    public void labelCountMustMatchOutputs() {
        TensorSpec out = TensorSpec.of(new int[] {1, 5}, "FLOAT32", 0f, 0);
        String m = message(() -> new ClassifierCore(Metadata.parse(META), IN, out));
        assertTrue(m, m.contains("3 labels") && m.contains("5 outputs"));
    }

    @Test
    public void unsupportedInputTypeAndShape() {
        assertTrue(message(() -> TensorSpec.of(new int[] {1, 4, 4, 3}, "FLOAT16", 0f, 0)).contains("unsupported tensor type FLOAT16"));
        assertTrue(message(() -> TensorSpec.of(new int[] {1, 4, 4, 3}, "INT8", 0f, 0)).contains("no quantization scale"));
        TensorSpec wrong = TensorSpec.of(new int[] {1, 8, 8, 3}, "FLOAT32", 0f, 0);
        TensorSpec out = TensorSpec.of(new int[] {1, 3}, "FLOAT32", 0f, 0);
        assertTrue(message(() -> new ClassifierCore(Metadata.parse(META), wrong, out)).contains("1x4x4x3"));
    }

    @Test
    public void featureExtractorsAreRefused() {
        String features = META.replace("\"output_kind\": \"logits\"", "\"output_kind\": \"features\"")
                .replace("[\"a\", \"b\", \"c\"]", "[]");
        assertTrue(message(() -> Metadata.parse(features)).contains("feature extractor"));
    }

    @Test
    public void malformedMetadata() {
        assertTrue(message(() -> Metadata.parse("{\"labels\": [\"a\",")).contains("not valid JSON"));
        assertTrue(message(() -> Metadata.parse("{\"preprocessing\": {}}")).contains("no labels"));
        assertTrue(message(() -> Metadata.parse(META.replace("bilinear", "lanczos"))).contains("interpolation"));
    }

    @Test
    public void uint8InputIsQuantizedWithScaleAndZeroPoint() {
        TensorSpec out = TensorSpec.of(new int[] {1, 3}, "INT8", 0.5f, -1);
        ClassifierCore core = new ClassifierCore(Metadata.parse(META), IN, out);
        int[] argb = new int[16];
        java.util.Arrays.fill(argb, 0xFF000000 | 255 << 16 | 0 << 8 | 128);  // r=255 g=0 b=128
        ByteBuffer buf = core.inputBuffer(RgbImage.fromArgb(argb, 4, 4));
        // (255/255 - 0.5)/0.25 = 2.0 -> 2/0.0078125 + 128 = 384 -> clamped to 255; g: -2 -> -256+128 -> 0
        // b: (128/255 - 0.5)/0.25 = 0.00784 -> round(1.004) = 1 -> 129
        assertEquals(255, buf.get(0) & 0xFF);
        assertEquals(0, buf.get(1) & 0xFF);
        assertEquals(129, buf.get(2) & 0xFF);
        ByteBuffer raw = ByteBuffer.wrap(new byte[] {5, 5, 1});  // dequantized: 3.0, 3.0, 1.0
        List<Prediction> top = core.topK(raw, 3);
        assertEquals(0, top.get(0).index);  // a tie keeps the lower index first
        assertEquals(1, top.get(1).index);
        assertEquals(2, top.get(2).index);
        assertEquals(1.0, top.get(0).probability + top.get(1).probability + top.get(2).probability, 1e-12);
    }

    @Test
    public void rotationTurnsClockwise() {
        RgbImage im = new RgbImage(2, 1, new int[] {1, 1, 1, 2, 2, 2});  // [1 2]
        RgbImage r = im.rotate(90);
        assertEquals(1, r.width);
        assertEquals(2, r.height);
        assertArrayEquals(new int[] {1, 1, 1, 2, 2, 2}, r.rgb);  // 1 on top, 2 below
        assertArrayEquals(new int[] {2, 2, 2, 1, 1, 1}, im.rotate(180).rgb);
        assertArrayEquals(im.rgb, im.rotate(360).rgb);
        assertTrue(message(() -> im.rotate(45)).contains("multiple of 90"));
    }

    @Test
    @SuppressWarnings("unchecked")
    public void jsonReader() {
        Map<String, Object> m = (Map<String, Object>) Json.parse("{\"a\": [1, -2.5e1, true, null], \"b\": \"x\\u00e9\\n\"}");
        assertEquals(List.of(1.0, -25.0, true), ((List<Object>) m.get("a")).subList(0, 3));
        assertEquals("x\u00e9\n", m.get("b"));
        assertTrue(message(() -> Json.parse("[1, 2")).contains("not valid JSON"));
        assertTrue(message(() -> Json.parse("{} x")).contains("after the JSON value"));
    }
}
