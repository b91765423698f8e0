package org.regnetykit.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.graphics.Matrix
import android.net.Uri
import android.os.Build
import androidx.exifinterface.media.ExifInterface
import org.regnetykit.core.ModelException
import org.regnetykit.core.RgbImage

/** Bitmaps to the core's RGB images, and gallery photos decoded upright at a sensible size. */
object Pictures {
    /** Photos are decoded at a power-of-two reduction that keeps the shorter side at least this long. */
    private const val MIN_SHORT_SIDE = 512

    fun toRgb(bitmap: Bitmap): RgbImage {
        val argbBitmap = if (bitmap.config == Bitmap.Config.ARGB_8888) bitmap else bitmap.copy(Bitmap.Config.ARGB_8888, false)
        val pixels = IntArray(argbBitmap.width * argbBitmap.height)
        argbBitmap.getPixels(pixels, 0, argbBitmap.width, 0, 0, argbBitmap.width, argbBitmap.height)
        return RgbImage.fromArgb(pixels, argbBitmap.width, argbBitmap.height)
    }

    fun decode(resolver: ContentResolver, uri: Uri): Bitmap {
        try {
            if (Build.VERSION.SDK_INT >= 28) {
                return ImageDecoder.decodeBitmap(ImageDecoder.createSource(resolver, uri)) { decoder, info, _ ->
                    decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE  // getPixels needs a software bitmap
                    decoder.setTargetSampleSize(sampleSize(info.size.width, info.size.height))
                }  // ImageDecoder applies the EXIF orientation itself
            }
            val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
            resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, bounds) }
            val options = BitmapFactory.Options().apply { inSampleSize = sampleSize(bounds.outWidth, bounds.outHeight) }
            val bitmap = resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, options) }
                ?: throw ModelException("the picked file is not an image Android can decode")
            val degrees = resolver.openInputStream(uri)?.use { ExifInterface(it).rotationDegrees } ?: 0
            if (degrees == 0) return bitmap
            val matrix = Matrix().apply { postRotate(degrees.toFloat()) }
            return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, true)
        } catch (e: ModelException) {
            throw e
        } catch (e: Exception) {
            throw ModelException("the picked file could not be decoded (${e.message ?: e.javaClass.simpleName}); try another photo")
        }
    }

    private fun sampleSize(width: Int, height: Int): Int {
        var n = 1
        while (minOf(width, height) / (n * 2) >= MIN_SHORT_SIDE) n *= 2
        return n
    }
}
