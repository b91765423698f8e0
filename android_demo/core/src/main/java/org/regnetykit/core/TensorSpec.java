package org.regnetykit.core;

import java.util.Arrays;

/**
 * A model tensor as the runtime reports it (LiteRT's Tensor: shape, data type, quantization), so the
 * core can check it against the metadata and fill or read it byte for byte.
 */
public final class TensorSpec {
    public enum Type { FLOAT32, UINT8, INT8 }

    public final int[] shape;
    public final Type type;
    public final float scale;      // quantized types: real = (q - zeroPoint) * scale
    public final int zeroPoint;

    public TensorSpec(int[] shape, Type type, float scale, int zeroPoint) {
        this.shape = shape.clone();
        this.type = type;
        this.scale = scale;
        this.zeroPoint = zeroPoint;
        if (type != Type.FLOAT32 && !(scale > 0)) {
            throw new ModelException("the model's " + type + " tensor has no quantization scale; re-convert it "
                    + "with the kit (full int8 keeps scale and zero point on its inputs and outputs)");
        }
    }

    /** From the runtime's names for data types (LiteRT's DataType names: FLOAT32, UINT8, INT8, ...). */
    public static TensorSpec of(int[] shape, String dataType, float scale, int zeroPoint) {
        Type type;
        switch (dataType.toUpperCase()) {
            case "FLOAT32": type = Type.FLOAT32; break;
            case "UINT8": type = Type.UINT8; break;
            case "INT8": type = Type.INT8; break;
            default:
                throw new ModelException("unsupported tensor type " + dataType + "; the app runs float32, uint8 "
                        + "and int8 models (convert with python -m converters.tflite, --io float32|uint8|int8)");
        }
        return new TensorSpec(shape, type, scale, zeroPoint);
    }

    public int elements() {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    public int bytesPerElement() {
        return type == Type.FLOAT32 ? 4 : 1;
    }

    public boolean quantized() {
        return type != Type.FLOAT32;
    }

    @Override
    public String toString() {
        return type + Arrays.toString(shape) + (quantized() ? " scale " + scale + " zero point " + zeroPoint : "");
    }
}
