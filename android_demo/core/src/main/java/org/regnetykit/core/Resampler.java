package org.regnetykit.core;

/**
 * Image resizing that gives the same bytes as Pillow's Image.resize for 8-bit RGB (the Python kit's
 * preprocessing), so an Android app feeds its model exactly what calibration and validation fed it.
 *
 * Written from the published algorithm of Pillow's libImaging Resample.c: separable convolution with
 * the filter stretched by the scale when shrinking (antialiasing), coefficients normalised per output
 * sample and turned into 22-bit fixed point, a horizontal pass over the rows the vertical pass needs,
 * each pass rounding and clamping to 8 bits. NEAREST follows Pillow's affine nearest-neighbour walk.
 */
public final class Resampler {
    private static final int PRECISION_BITS = 32 - 8 - 2;

    private Resampler() {
    }

    public static RgbImage resize(RgbImage in, int outW, int outH, String interpolation) {
        if (outW < 1 || outH < 1) {
            throw new ModelException("resize target must be positive, got " + outW + "x" + outH);
        }
        if (outW == in.width && outH == in.height) {
            return new RgbImage(in.width, in.height, in.rgb.clone());
        }
        switch (interpolation) {
            case "nearest": return nearest(in, outW, outH);
            case "bilinear": return separable(in, outW, outH, 1.0, false);
            case "bicubic": return separable(in, outW, outH, 2.0, true);
            default:
                throw new ModelException("interpolation '" + interpolation + "' is not one of bilinear, bicubic, nearest");
        }
    }

    private static double filter(double x, boolean bicubic) {
        if (x < 0.0) {
            x = -x;
        }
        if (!bicubic) {
            return x < 1.0 ? 1.0 - x : 0.0;
        }
        final double a = -0.5;
        if (x < 1.0) {
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        }
        if (x < 2.0) {
            return (((x - 5) * x + 8) * x - 4) * a;
        }
        return 0.0;
    }

    /** Per output sample: first input index, count, and fixed-point weights (ksize per sample). */
    private static final class Coeffs {
        int ksize;
        int[] bounds;
        int[] kk;
    }

    private static Coeffs coeffs(int inSize, int outSize, double support0, boolean bicubic) {
        double scale = (double) inSize / outSize;
        double filterscale = Math.max(scale, 1.0);
        double support = support0 * filterscale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        Coeffs c = new Coeffs();
        c.ksize = ksize;
        c.bounds = new int[outSize * 2];
        c.kk = new int[outSize * ksize];
        double[] k = new double[ksize];
        for (int xx = 0; xx < outSize; xx++) {
            double center = (xx + 0.5) * scale;
            double ww = 0.0;
            double ss = 1.0 / filterscale;
            int xmin = (int) (center - support + 0.5);
            if (xmin < 0) {
                xmin = 0;
            }
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) {
                xmax = inSize;
            }
            xmax -= xmin;
            for (int x = 0; x < xmax; x++) {
                double w = filter((x + xmin - center + 0.5) * ss, bicubic);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++) {
                double v = ww != 0.0 ? k[x] / ww : k[x];
                c.kk[xx * ksize + x] = v < 0 ? (int) (-0.5 + v * (1 << PRECISION_BITS))
                                             : (int) (0.5 + v * (1 << PRECISION_BITS));
            }
            c.bounds[xx * 2] = xmin;
            c.bounds[xx * 2 + 1] = xmax;
        }
        return c;
    }

    private static int clip8(int v) {
        int s = v >> PRECISION_BITS;
        return s < 0 ? 0 : Math.min(s, 255);
    }

    private static RgbImage separable(RgbImage in, int outW, int outH, double support, boolean bicubic) {
        Coeffs horiz = coeffs(in.width, outW, support, bicubic);
        Coeffs vert = coeffs(in.height, outH, support, bicubic);
        int yFirst = vert.bounds[0];
        int yLast = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1];
        int[] src = in.rgb;
        int srcW = in.width;
        if (outW != in.width) {  // horizontal pass over the rows the vertical pass reads
            int rows = yLast - yFirst;
            int[] tmp = new int[outW * rows * 3];
            for (int y = 0; y < rows; y++) {
                int rowBase = (y + yFirst) * srcW * 3;
                for (int xx = 0; xx < outW; xx++) {
                    int xmin = horiz.bounds[xx * 2], xmax = horiz.bounds[xx * 2 + 1];
                    int kBase = xx * horiz.ksize;
                    int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                    for (int x = 0; x < xmax; x++) {
                        int k = horiz.kk[kBase + x];
                        int p = rowBase + (x + xmin) * 3;
                        s0 += src[p] * k;
                        s1 += src[p + 1] * k;
                        s2 += src[p + 2] * k;
                    }
                    int o = (y * outW + xx) * 3;
                    tmp[o] = clip8(s0);
                    tmp[o + 1] = clip8(s1);
                    tmp[o + 2] = clip8(s2);
                }
            }
            for (int i = 0; i < outH; i++) {
                vert.bounds[i * 2] -= yFirst;
            }
            src = tmp;
            srcW = outW;
        }
        if (outH == in.height) {
            return new RgbImage(srcW, outH, src == in.rgb ? src.clone() : src);
        }
        int[] out = new int[outW * outH * 3];
        for (int yy = 0; yy < outH; yy++) {
            int ymin = vert.bounds[yy * 2], ymax = vert.bounds[yy * 2 + 1];
            int kBase = yy * vert.ksize;
            for (int xx = 0; xx < outW; xx++) {
                int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int y = 0; y < ymax; y++) {
                    int k = vert.kk[kBase + y];
                    int p = ((y + ymin) * srcW + xx) * 3;
                    s0 += src[p] * k;
                    s1 += src[p + 1] * k;
                    s2 += src[p + 2] * k;
                }
                int o = (yy * outW + xx) * 3;
                out[o] = clip8(s0);
                out[o + 1] = clip8(s1);
                out[o + 2] = clip8(s2);
            }
        }
        return new RgbImage(outW, outH, out);
    }

    private static RgbImage nearest(RgbImage in, int outW, int outH) {
        double ax = (double) in.width / outW, ay = (double) in.height / outH;
        int[] xs = new int[outW];
        double v = ax * 0.5;
        for (int x = 0; x < outW; x++, v += ax) {
            xs[x] = Math.min((int) v, in.width - 1);
        }
        int[] out = new int[outW * outH * 3];
        double w = ay * 0.5;
        for (int y = 0; y < outH; y++, w += ay) {
            int sy = Math.min((int) w, in.height - 1);
            for (int x = 0; x < outW; x++) {
                System.arraycopy(in.rgb, (sy * in.width + xs[x]) * 3, out, (y * outW + x) * 3, 3);
            }
        }
        return new RgbImage(outW, outH, out);
    }
}
