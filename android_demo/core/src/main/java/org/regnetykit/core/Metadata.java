package org.regnetykit.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** The kit's metadata record, as the converters embed it: labels, preprocessing, precision, model name. */
public final class Metadata {
    public final String modelName;
    public final String precision;
    public final List<String> labels;
    public final PreprocessSpec preprocessing;
    public final String outputKind;   // "logits" (softmax applied by the core) or "probabilities"

    private Metadata(Map<String, Object> root) {
        Object model = root.get("model");
        modelName = model instanceof Map ? String.valueOf(((Map<?, ?>) model).get("name")) : "model";
        precision = root.get("precision") instanceof String ? (String) root.get("precision") : "unknown";
        Object io = root.get("io");
        Object kind = io instanceof Map ? ((Map<?, ?>) io).get("output_kind") : null;
        outputKind = kind instanceof String ? (String) kind : "logits";
        if (outputKind.equals("features")) {
            throw new ModelException("this model is a feature extractor (converted with --head none): it outputs "
                    + "feature vectors, not labels; convert a classifier for the app (without --head none)");
        }
        Object labelList = root.get("labels");
        if (!(labelList instanceof List) || ((List<?>) labelList).isEmpty()) {
            throw new ModelException("the model's metadata has no labels; re-convert it with --labels FILE");
        }
        List<String> names = new ArrayList<>();
        for (Object label : (List<?>) labelList) {
            if (!(label instanceof String)) {
                throw new ModelException("the model's metadata labels must be strings; re-convert it with --labels FILE");
            }
            names.add((String) label);
        }
        labels = Collections.unmodifiableList(names);
        Object prep = root.get("preprocessing");
        if (!(prep instanceof Map)) {
            throw new ModelException("the model's metadata has no preprocessing spec; re-convert it with the kit");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> prepMap = (Map<String, Object>) prep;
        preprocessing = PreprocessSpec.from(prepMap);
    }

    /** Parses the metadata JSON; throws ModelException naming what is missing or malformed. */
    public static Metadata parse(String json) {
        Object root = Json.parse(json);
        if (!(root instanceof Map)) {
            throw new ModelException("the model's metadata is not a JSON object; re-convert the model with the kit");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> map = (Map<String, Object>) root;
        return new Metadata(map);
    }

    /** Reads and parses the metadata embedded in a .tflite file's bytes. */
    public static Metadata fromModel(byte[] tflite) {
        return parse(TfliteMetadata.read(tflite));
    }

    static double number(Map<String, Object> m, String key, String where) {
        Object v = m.get(key);
        if (!(v instanceof Double)) {
            throw new ModelException(where + " " + key + " must be a number, got " + v);
        }
        return (Double) v;
    }

    static String string(Map<String, Object> m, String key, String where) {
        Object v = m.get(key);
        if (!(v instanceof String)) {
            throw new ModelException(where + " " + key + " must be a string, got " + v);
        }
        return (String) v;
    }
}
