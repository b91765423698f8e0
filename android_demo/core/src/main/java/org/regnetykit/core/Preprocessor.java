package org.regnetykit.core;

/**
 * RGB image -> model input, by the model's PreprocessSpec: the rules of the Python kit's
 * {@code edge/images.py} (resize the shorter side to size / crop_fraction and crop the centre, or
 * stretch; scale to [0, 1] and normalise with mean/std unless the model does it), then quantized with
 * the input tensor's scale and zero point when the model takes integers.
 */
public final class Preprocessor {
    private final PreprocessSpec spec;

    public Preprocessor(PreprocessSpec spec) {
        this.spec = spec;
    }

    /** Resize (and centre-crop) to the spec's size, as timm's eval transform and the Python kit do. */
    public RgbImage resizeAndCrop(RgbImage image) {
        if (spec.resize.equals("stretch")) {
            return Resampler.resize(image, spec.width, spec.height, spec.interpolation);
        }
        int shortSide = spec.resizeSize();
        int w = image.width, h = image.height;
        int newW, newH;
        if (w <= h) {
            newW = shortSide;
            newH = (int) ((double) shortSide * h / w);
        } else {
            newW = (int) ((double) shortSide * w / h);
            newH = shortSide;
        }
        RgbImage resized = (newW == w && newH == h) ? image : Resampler.resize(image, newW, newH, spec.interpolation);
        int top = (int) Math.rint((newH - spec.height) / 2.0);   // Python's round(): half to even
        int left = (int) Math.rint((newW - spec.width) / 2.0);
        if (top < 0 || left < 0) {
            throw new ModelException("image of " + w + "x" + h + " is too small for a " + spec.width + "x"
                    + spec.height + " crop after resizing");
        }
        return resized.crop(left, top, spec.width, spec.height);
    }

    /** The float32 model input, (height, width, 3) row-major: normalised unless the model normalises. */
    public float[] floatInput(RgbImage image) {
        RgbImage crop = resizeAndCrop(image);
        boolean bgr = spec.channelOrder.equals("BGR");
        float[] out = new float[crop.rgb.length];
        for (int i = 0; i < crop.rgb.length; i += 3) {
            for (int c = 0; c < 3; c++) {
                int src = bgr ? 2 - c : c;
                float p = crop.rgb[i + src];
                out[i + c] = spec.normalizeInModel ? p : (p / 255.0f - spec.mean[src]) / spec.std[src];
            }
        }
        return out;
    }

    /** Float values -> the tensor's integers: round half to even, add the zero point, clamp. */
    public static byte[] quantize(float[] values, TensorSpec tensor) {
        if (!tensor.quantized()) {
            throw new ModelException("quantize() is for uint8/int8 tensors; this one is " + tensor.type);
        }
        int lo = tensor.type == TensorSpec.Type.UINT8 ? 0 : -128;
        int hi = tensor.type == TensorSpec.Type.UINT8 ? 255 : 127;
        byte[] out = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            float q = (float) Math.rint(values[i] / tensor.scale) + tensor.zeroPoint;
            int v = (int) Math.max(lo, Math.min(hi, q));
            out[i] = (byte) v;
        }
        return out;
    }
}
