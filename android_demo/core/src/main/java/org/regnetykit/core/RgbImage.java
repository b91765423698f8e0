package org.regnetykit.core;

/** An 8-bit RGB image, interleaved (r, g, b per pixel, rows top to bottom), values 0-255. */
public final class RgbImage {
    public final int width, height;
    public final int[] rgb;

    public RgbImage(int width, int height, int[] rgb) {
        if (width < 1 || height < 1) {
            throw new ModelException("image size must be positive, got " + width + "x" + height);
        }
        if (rgb.length != width * height * 3) {
            throw new ModelException("image of " + width + "x" + height + " needs " + width * height * 3
                    + " channel values, got " + rgb.length);
        }
        this.width = width;
        this.height = height;
        this.rgb = rgb;
    }

    /** From Android's Bitmap.getPixels layout (0xAARRGGBB per pixel, row-major); alpha is ignored. */
    public static RgbImage fromArgb(int[] argb, int width, int height) {
        if (argb == null || argb.length != width * height) {
            throw new ModelException("pixel array of " + (argb == null ? 0 : argb.length) + " values does not fit a "
                    + width + "x" + height + " image");
        }
        int[] rgb = new int[argb.length * 3];
        for (int i = 0; i < argb.length; i++) {
            int p = argb[i];
            rgb[3 * i] = (p >> 16) & 0xFF;
            rgb[3 * i + 1] = (p >> 8) & 0xFF;
            rgb[3 * i + 2] = p & 0xFF;
        }
        return new RgbImage(width, height, rgb);
    }

    /** The box [left, top, left + w, top + h), as Pillow's Image.crop. */
    public RgbImage crop(int left, int top, int w, int h) {
        if (left < 0 || top < 0 || left + w > width || top + h > height) {
            throw new ModelException("crop " + w + "x" + h + " at (" + left + ", " + top + ") is outside the "
                    + width + "x" + height + " image");
        }
        int[] out = new int[w * h * 3];
        for (int y = 0; y < h; y++) {
            System.arraycopy(rgb, ((top + y) * width + left) * 3, out, y * w * 3, w * 3);
        }
        return new RgbImage(w, h, out);
    }

    /** Rotated clockwise by 0, 90, 180 or 270 degrees (camera frames arrive sensor-oriented). */
    public RgbImage rotate(int degrees) {
        int turns = ((degrees % 360) + 360) % 360 / 90;
        if (degrees % 90 != 0) {
            throw new ModelException("rotation must be a multiple of 90 degrees, got " + degrees);
        }
        RgbImage image = this;
        for (int t = 0; t < turns; t++) {
            int w = image.height, h = image.width;
            int[] out = new int[image.rgb.length];
            for (int y = 0; y < image.height; y++) {
                for (int x = 0; x < image.width; x++) {
                    int nx = image.height - 1 - y, ny = x;  // clockwise
                    System.arraycopy(image.rgb, (y * image.width + x) * 3, out, (ny * w + nx) * 3, 3);
                }
            }
            image = new RgbImage(w, h, out);
        }
        return image;
    }
}
