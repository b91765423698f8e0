package org.regnetykit.demo

import android.content.Context
import android.os.SystemClock
import java.io.FileNotFoundException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.regnetykit.core.ClassifierCore
import org.regnetykit.core.Metadata
import org.regnetykit.core.ModelException
import org.regnetykit.core.Prediction
import org.regnetykit.core.RgbImage
import org.regnetykit.core.TensorSpec
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate

/** Where the model runs. A delegate that rejects the model falls back to the CPU, with a notice. */
enum class Accelerator { CPU, GPU, NNAPI }

/**
 * The LiteRT interpreter around the model in the app's assets. Everything that is not running the
 * interpreter (checks, preprocessing, quantization, top-k, labels) is the pure-Java core's.
 */
class ModelRunner private constructor(
    private val interpreter: Interpreter,
    private val delegate: Delegate?,
    val core: ClassifierCore,
    val accelerator: Accelerator,
    val notice: String?,
) : AutoCloseable {

    data class Result(val top: List<Prediction>, val latencyMs: Double)

    @Synchronized
    fun classify(image: RgbImage): Result {
        val input = core.inputBuffer(image)
        val output = core.newOutputBuffer()
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, output)
        val ms = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        return Result(core.topK(output, 5), ms)
    }

    val summary: String
        get() = "${core.metadata.modelName} ${core.metadata.precision}, input ${core.input}, " +
            "${core.metadata.labels.size} labels, on $accelerator"

    @Synchronized
    override fun close() {
        interpreter.close()
        (delegate as? AutoCloseable)?.close()
    }

    companion object {
        const val ASSET = "model.tflite"

        /** Opens the bundled model; throws ModelException with a message the app shows as it is. */
        fun open(context: Context, threads: Int, accelerator: Accelerator): ModelRunner {
            val bytes = try {
                context.assets.open(ASSET).use { it.readBytes() }
            } catch (e: FileNotFoundException) {
                throw ModelException("no $ASSET in the app's assets: run `python -m edge.android --model FILE` and rebuild")
            }
            val metadata = Metadata.fromModel(bytes)  // no kit metadata: a clear ModelException
            val model = ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder())
            model.put(bytes).rewind()
            if (accelerator == Accelerator.CPU) {
                return onCpu(model, metadata, threads, null)
            }
            return try {
                build(model, metadata, threads, accelerator, null)
            } catch (e: ModelException) {
                throw e
            } catch (e: Exception) {  // the delegate refused the model, or is missing on this device
                onCpu(model, metadata, threads,
                    "The $accelerator delegate rejected this model (${firstLine(e)}); running on the CPU instead. " +
                        "Grouped convolutions are a known cause: convert with " +
                        "`python -m converters.tflite --target portable` (or --target nnapi).")
            }
        }

        private fun onCpu(model: ByteBuffer, metadata: Metadata, threads: Int, notice: String?): ModelRunner =
            try {
                build(model, metadata, threads, Accelerator.CPU, notice)
            } catch (e: ModelException) {
                throw e
            } catch (e: Exception) {  // LiteRT itself refused the file: say so instead of crashing
                throw ModelException("LiteRT could not load the model (${firstLine(e)}); re-convert it with the kit " +
                    "(`--target portable` for older runtimes)")
            }

        private fun firstLine(e: Exception): String =
            e.message?.lineSequence()?.firstOrNull()?.take(160) ?: e.javaClass.simpleName

        private fun build(model: ByteBuffer, metadata: Metadata, threads: Int, accelerator: Accelerator,
                          notice: String?): ModelRunner {
            val options = Interpreter.Options().setNumThreads(threads)
            val delegate: Delegate? = when (accelerator) {
                Accelerator.CPU -> null
                Accelerator.GPU -> GpuDelegate()
                Accelerator.NNAPI -> NnApiDelegate()
            }
            delegate?.let { options.addDelegate(it) }
            val interpreter = try {
                Interpreter(model, options)
            } catch (e: Exception) {
                (delegate as? AutoCloseable)?.close()
                throw e
            }
            val core = try {
                ClassifierCore(metadata, spec(interpreter.getInputTensor(0)), spec(interpreter.getOutputTensor(0)))
            } catch (e: ModelException) {
                interpreter.close()
                (delegate as? AutoCloseable)?.close()
                throw e
            }
            return ModelRunner(interpreter, delegate, core, accelerator, notice)
        }

        private fun spec(tensor: Tensor): TensorSpec {
            val q = tensor.quantizationParams()
            return TensorSpec.of(tensor.shape(), tensor.dataType().name, q.scale, q.zeroPoint)
        }
    }
}
