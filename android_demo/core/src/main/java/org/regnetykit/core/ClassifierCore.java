package org.regnetykit.core;

import java.nio.ByteBuffer;
import java.util.List;

/**
 * Everything about a classifier that is not the runtime or the UI: checks the model's tensors against
 * its metadata, turns a picture into the input buffer, and the output buffer into top-k labels. The
 * Android app hands it the metadata (read from the .tflite bytes) and the tensors LiteRT reports.
 */
public final class ClassifierCore {
    public final Metadata metadata;
    public final TensorSpec input, output;
    private final Preprocessor preprocessor;

    public ClassifierCore(Metadata metadata, TensorSpec input, TensorSpec output) {
        this.metadata = metadata;
        this.input = input;
        this.output = output;
        PreprocessSpec spec = metadata.preprocessing;
        int[] s = input.shape;
        if (s.length != 4 || s[0] != 1 || s[1] != spec.height || s[2] != spec.width || s[3] != 3) {
            throw new ModelException("the model's input is " + java.util.Arrays.toString(s) + " but its metadata "
                    + "describes 1x" + spec.height + "x" + spec.width + "x3 RGB images; re-convert the model with the kit");
        }
        int outputs = output.shape.length == 0 ? 1 : output.shape[output.shape.length - 1];
        if (output.elements() != outputs) {
            throw new ModelException("the model's output " + java.util.Arrays.toString(output.shape)
                    + " is not one row of scores; the app runs classifiers (convert with --head, not --head none)");
        }
        if (outputs != metadata.labels.size()) {
            throw new ModelException(metadata.labels.size() + " labels in the model's metadata but " + outputs
                    + " outputs; re-convert it with the right --labels file");
        }
        this.preprocessor = new Preprocessor(spec);
    }

    /** Convenience: everything from the .tflite bytes and the runtime's tensor descriptions. */
    public static ClassifierCore create(byte[] tflite, TensorSpec input, TensorSpec output) {
        return new ClassifierCore(Metadata.fromModel(tflite), input, output);
    }

    public Preprocessor preprocessor() {
        return preprocessor;
    }

    /** The model input for one image: float32 values, or the quantized bytes for uint8/int8 models. */
    public ByteBuffer inputBuffer(RgbImage image) {
        float[] values = preprocessor.floatInput(image);
        ByteBuffer buf = Postprocessor.direct(input.elements() * input.bytesPerElement());
        if (input.quantized()) {
            buf.put(Preprocessor.quantize(values, input));
        } else {
            buf.asFloatBuffer().put(values);
        }
        buf.rewind();
        return buf;
    }

    /** A buffer the runtime can write the output into. */
    public ByteBuffer newOutputBuffer() {
        return Postprocessor.direct(output.elements() * output.bytesPerElement());
    }

    /** Top-k labels from the output buffer (softmax applied to logits). */
    public List<Prediction> topK(ByteBuffer rawOutput, int k) {
        float[] scores = Postprocessor.dequantize(rawOutput, output);
        double[] probabilities;
        if (metadata.outputKind.equals("probabilities")) {
            probabilities = new double[scores.length];
            for (int i = 0; i < scores.length; i++) {
                probabilities[i] = scores[i];
            }
        } else {
            probabilities = Postprocessor.softmax(scores);
        }
        return Postprocessor.topK(probabilities, metadata.labels, k);
    }
}
