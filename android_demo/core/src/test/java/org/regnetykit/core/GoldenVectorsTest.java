package org.regnetykit.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.Assume;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The core against the golden vectors that {@code python -m edge.golden} writes from the Python kit's
 * edge runtime: resized pixels and quantized inputs byte for byte, float inputs within 1e-6, top-5 the same.
 * The folder is {@code -Dgolden.dir} (make test passes freshly written vectors), else the committed set.
 */
public class GoldenVectorsTest {
    private static File dir;
    private static Map<String, Object> index;
    private static final Map<String, RgbImage> images = new HashMap<>();

    @BeforeClass
    @SuppressWarnings("unchecked")
    public static void load() throws IOException {
        dir = new File(System.getProperty("golden.dir", "src/test/resources/golden"));
        File json = new File(dir, "golden.json");
        assertTrue("no golden vectors at " + json + "; write them with python -m edge.golden", json.isFile());
        index = (Map<String, Object>) Json.parse(new String(Files.readAllBytes(json.toPath()), StandardCharsets.UTF_8));
        for (Object o : (List<Object>) index.get("images")) {
            Map<String, Object> im = (Map<String, Object>) o;
            byte[] raw = read((String) im.get("file"));
            int[] rgb = new int[raw.length];
            for (int i = 0; i < raw.length; i++) {
                rgb[i] = raw[i] & 0xFF;
            }
            images.put((String) im.get("name"), new RgbImage(num(im, "width"), num(im, "height"), rgb));
        }
        assertTrue("the golden set has no images", images.size() > 0);
    }

    private static byte[] read(String relative) throws IOException {
        return Files.readAllBytes(new File(dir, relative).toPath());
    }

    private static int num(Map<String, Object> m, String key) {
        return (int) (double) (Double) m.get(key);
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> list(Map<String, Object> m, String key) {
        return (List<Map<String, Object>>) (List<?>) m.get(key);
    }

    @SuppressWarnings("unchecked")
    private static TensorSpec tensor(Map<String, Object> model, String key) {
        Map<String, Object> t = (Map<String, Object>) model.get(key);
        List<Object> dims = (List<Object>) t.get("shape");
        int[] shape = new int[dims.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = (int) (double) (Double) dims.get(i);
        }
        return TensorSpec.of(shape, (String) t.get("dtype"), (float) (double) (Double) t.get("scale"), num(t, "zero_point"));
    }

    /** The core as the app builds it: the model's metadata and the tensors the runtime reports. */
    private static ClassifierCore core(Map<String, Object> model) {
        return new ClassifierCore(Metadata.parse((String) model.get("metadata")), tensor(model, "input"),
                tensor(model, "output"));
    }

    @Test
    @SuppressWarnings("unchecked")
    public void resizedPixelsMatchPillowExactly() throws IOException {
        int cases = 0;
        for (Map<String, Object> c : list(index, "resize_cases")) {
            PreprocessSpec spec = PreprocessSpec.from((Map<String, Object>) c.get("spec"));
            RgbImage out = new Preprocessor(spec).resizeAndCrop(images.get((String) c.get("image")));
            byte[] expected = read((String) c.get("file"));
            assertEquals(num(c, "width"), out.width);
            assertEquals(num(c, "height"), out.height);
            int wrong = 0;
            for (int i = 0; i < expected.length; i++) {
                if ((expected[i] & 0xFF) != out.rgb[i]) {
                    wrong++;
                }
            }
            assertEquals(c.get("file") + ": channel values differing from Pillow", 0, wrong);
            cases++;
        }
        assertTrue("expected resize cases for 3 interpolations x 2 rules", cases >= 6);
    }

    @Test
    public void modelInputsMatchTheKit() throws IOException {
        int cases = 0;
        for (Map<String, Object> model : list(index, "models")) {
            ClassifierCore core = core(model);
            for (Map<String, Object> c : list(model, "cases")) {
                ByteBuffer actual = core.inputBuffer(images.get((String) c.get("image")));
                byte[] expected = read((String) c.get("input_file"));
                String what = model.get("name") + " / " + c.get("image");
                if (core.input.quantized()) {
                    byte[] bytes = new byte[actual.remaining()];
                    actual.get(bytes);
                    assertArrayEquals(what + ": quantized input bytes", expected, bytes);
                } else {
                    float[] want = new float[expected.length / 4];
                    ByteBuffer.wrap(expected).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(want);
                    float[] got = new float[want.length];
                    actual.asFloatBuffer().get(got);
                    assertArrayEquals(what + ": float input", want, got, 1e-6f);
                }
                cases++;
            }
        }
        assertTrue("the golden set has no model cases", cases > 0);
    }

    @Test
    public void topFiveMatchesTheKit() throws IOException {
        int cases = 0;
        for (Map<String, Object> model : list(index, "models")) {
            ClassifierCore core = core(model);
            for (Map<String, Object> c : list(model, "cases")) {
                ByteBuffer raw = ByteBuffer.wrap(read((String) c.get("output_file"))).order(ByteOrder.LITTLE_ENDIAN);
                List<Prediction> top = core.topK(raw, 5);
                List<Map<String, Object>> expected = list(c, "top");
                assertEquals(expected.size(), top.size());
                for (int i = 0; i < top.size(); i++) {
                    String what = model.get("name") + " / " + c.get("image") + " rank " + (i + 1);
                    assertEquals(what, expected.get(i).get("label"), top.get(i).label);
                    assertEquals(what, num(expected.get(i), "index"), top.get(i).index);
                    assertEquals(what, (Double) expected.get(i).get("probability"), top.get(i).probability, 1e-6);
                }
                cases++;
            }
        }
        assertTrue("the golden set has no model cases", cases > 0);
    }

    @Test
    public void metadataReadFromTheModelFileItself() throws IOException {
        String models = System.getProperty("golden.models");
        Assume.assumeTrue("-Dgolden.models (the folder of the .tflite files) not given: the committed "
                + "vectors do not carry the models", models != null);
        int checked = 0;
        for (Map<String, Object> model : list(index, "models")) {
            byte[] tflite = Files.readAllBytes(new File(models, (String) model.get("name")).toPath());
            Metadata fromFile = Metadata.fromModel(tflite);
            Metadata fromIndex = Metadata.parse((String) model.get("metadata"));
            assertEquals(fromIndex.labels, fromFile.labels);
            assertEquals(fromIndex.preprocessing.interpolation, fromFile.preprocessing.interpolation);
            assertEquals(fromIndex.precision, fromFile.precision);
            ClassifierCore.create(tflite, tensor(model, "input"), tensor(model, "output"));
            checked++;
        }
        assertTrue(checked > 0);
    }
}
