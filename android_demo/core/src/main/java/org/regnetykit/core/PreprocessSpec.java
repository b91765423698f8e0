package org.regnetykit.core;

import java.util.List;
import java.util.Map;

/**
 * How an RGB image becomes the model input: the same fields and rules as the Python kit's
 * {@code edge/preprocessing.py}, read from the model's metadata (never hard-coded in the app).
 */
public final class PreprocessSpec {
    public final int height, width;
    public final String resize;           // "shorter_side" | "stretch"
    public final double cropFraction;
    public final String interpolation;    // "bilinear" | "bicubic" | "nearest"
    public final float[] mean, std;       // per channel, in [0, 1] units
    public final boolean normalizeInModel;
    public final String channelOrder;     // "RGB" | "BGR"

    private PreprocessSpec(Map<String, Object> m) {
        height = (int) Metadata.number(m, "height", "preprocessing");
        width = (int) Metadata.number(m, "width", "preprocessing");
        resize = Metadata.string(m, "resize", "preprocessing");
        cropFraction = Metadata.number(m, "crop_fraction", "preprocessing");
        interpolation = Metadata.string(m, "interpolation", "preprocessing");
        mean = triple(m, "mean");
        std = triple(m, "std");
        normalizeInModel = Boolean.TRUE.equals(m.get("normalize_in_model"));
        channelOrder = m.containsKey("channel_order") ? Metadata.string(m, "channel_order", "preprocessing") : "RGB";
        if (height < 1 || width < 1) {
            throw new ModelException("preprocessing size must be positive, got " + width + "x" + height);
        }
        if (!resize.equals("shorter_side") && !resize.equals("stretch")) {
            throw new ModelException("preprocessing resize '" + resize + "' is not one of shorter_side, stretch");
        }
        if (!(cropFraction > 0 && cropFraction <= 1)) {
            throw new ModelException("preprocessing crop_fraction must be in (0, 1], got " + cropFraction);
        }
        if (!interpolation.equals("bilinear") && !interpolation.equals("bicubic") && !interpolation.equals("nearest")) {
            throw new ModelException("preprocessing interpolation '" + interpolation
                    + "' is not one of bilinear, bicubic, nearest");
        }
        if (!channelOrder.equals("RGB") && !channelOrder.equals("BGR")) {
            throw new ModelException("preprocessing channel_order '" + channelOrder + "' is not RGB or BGR");
        }
        for (float s : std) {
            if (!(s > 0)) {
                throw new ModelException("preprocessing std values must be positive");
            }
        }
    }

    static PreprocessSpec from(Map<String, Object> m) {
        return new PreprocessSpec(m);
    }

    private static float[] triple(Map<String, Object> m, String key) {
        Object v = m.get(key);
        if (!(v instanceof List) || ((List<?>) v).size() != 3) {
            throw new ModelException("preprocessing " + key + " must be a list of three numbers");
        }
        float[] out = new float[3];
        for (int i = 0; i < 3; i++) {
            Object x = ((List<?>) v).get(i);
            if (!(x instanceof Double)) {
                throw new ModelException("preprocessing " + key + " must be a list of three numbers");
            }
            out[i] = (float) (double) (Double) x;  // float32, as numpy.asarray(mean, float32)
        }
        return out;
    }

    /** Shorter-side length before the centre crop: int(min(size) / crop_fraction), as timm and the kit. */
    public int resizeSize() {
        return (int) (Math.min(height, width) / cropFraction);
    }
}
