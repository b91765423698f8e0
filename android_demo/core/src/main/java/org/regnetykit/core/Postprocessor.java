package org.regnetykit.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/** Raw model output -> float scores -> probabilities -> top-k, as the Python kit's edge classifier. */
public final class Postprocessor {
    private Postprocessor() {
    }

    /** The output tensor's bytes as floats: float32 read as is, uint8/int8 as (q - zeroPoint) * scale. */
    public static float[] dequantize(ByteBuffer raw, TensorSpec tensor) {
        ByteBuffer buf = raw.duplicate().order(raw.order());
        buf.rewind();
        int n = tensor.elements();
        if (buf.remaining() != n * tensor.bytesPerElement()) {
            throw new ModelException("output buffer holds " + buf.remaining() + " bytes; the " + tensor
                    + " tensor needs " + n * tensor.bytesPerElement());
        }
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            switch (tensor.type) {
                case FLOAT32: out[i] = buf.getFloat(); break;
                case UINT8: out[i] = ((float) (buf.get() & 0xFF) - tensor.zeroPoint) * tensor.scale; break;
                default: out[i] = ((float) buf.get() - tensor.zeroPoint) * tensor.scale; break;
            }
        }
        return out;
    }

    /** Softmax in double precision (max subtracted first). */
    public static double[] softmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double[] e = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            e[i] = Math.exp((double) logits[i] - max);
            sum += e[i];
        }
        for (int i = 0; i < e.length; i++) {
            e[i] /= sum;
        }
        return e;
    }

    /** The k most probable classes, highest first; equal probabilities keep the lower index first. */
    public static List<Prediction> topK(double[] probabilities, List<String> labels, int k) {
        if (labels.size() != probabilities.length) {
            throw new ModelException(labels.size() + " labels for " + probabilities.length + " outputs");
        }
        Integer[] order = new Integer[probabilities.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, (a, b) -> Double.compare(probabilities[b], probabilities[a]));  // stable
        List<Prediction> top = new ArrayList<>();
        for (int i = 0; i < Math.min(Math.max(1, k), order.length); i++) {
            top.add(new Prediction(labels.get(order[i]), order[i], probabilities[order[i]]));
        }
        return top;
    }

    static ByteBuffer direct(int bytes) {
        return ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder());
    }
}
