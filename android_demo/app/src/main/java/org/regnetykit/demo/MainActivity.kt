package org.regnetykit.demo

import android.Manifest
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Bundle
import android.view.View
import android.widget.Button
import android.widget.ImageView
import android.widget.SeekBar
import android.widget.TextView
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import com.google.android.material.materialswitch.MaterialSwitch
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import org.regnetykit.core.ModelException

/**
 * Live camera or a gallery photo -> top-5 labels with probabilities and the model's latency per frame.
 * Threads and the GPU / NNAPI delegates are chosen on screen; a model the app cannot use is explained
 * on screen instead of crashing.
 */
class MainActivity : AppCompatActivity() {
    private lateinit var preview: PreviewView
    private lateinit var picked: ImageView
    private lateinit var results: TextView
    private lateinit var status: TextView
    private lateinit var threadsLabel: TextView
    private lateinit var gpu: MaterialSwitch
    private lateinit var nnapi: MaterialSwitch

    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    @Volatile private var runner: ModelRunner? = null
    @Volatile private var cameraOn = false
    private var threads = 2

    private val cameraPermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else status.setText(R.string.camera_denied)
    }

    private val pickPhoto = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) classifyPhoto(uri)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        picked = findViewById(R.id.picked)
        results = findViewById(R.id.results)
        status = findViewById(R.id.status)
        threadsLabel = findViewById(R.id.threadsLabel)
        gpu = findViewById(R.id.gpu)
        nnapi = findViewById(R.id.nnapi)

        val seek = findViewById<SeekBar>(R.id.threads)
        seek.progress = threads - 1
        threadsLabel.text = getString(R.string.threads, threads)
        seek.setOnSeekBarChangeListener(object : SeekBar.OnSeekBarChangeListener {
            override fun onProgressChanged(bar: SeekBar, value: Int, fromUser: Boolean) {
                threads = value + 1
                threadsLabel.text = getString(R.string.threads, threads)
            }
            override fun onStartTrackingTouch(bar: SeekBar) = Unit
            override fun onStopTrackingTouch(bar: SeekBar) = reopen()
        })
        gpu.setOnCheckedChangeListener { _, on -> if (on) nnapi.isChecked = false; reopen() }
        nnapi.setOnCheckedChangeListener { _, on -> if (on) gpu.isChecked = false; reopen() }
        findViewById<Button>(R.id.camera).setOnClickListener {
            if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
                startCamera()
            } else {
                cameraPermission.launch(Manifest.permission.CAMERA)
            }
        }
        findViewById<Button>(R.id.gallery).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        reopen()
    }

    private fun accelerator() = when {
        gpu.isChecked -> Accelerator.GPU
        nnapi.isChecked -> Accelerator.NNAPI
        else -> Accelerator.CPU
    }

    /** (Re)open the model with the chosen threads and delegate, off the main thread. */
    private fun reopen() {
        val wanted = accelerator()
        val count = threads
        worker.execute {
            runner?.close()
            runner = null
            try {
                val opened = ModelRunner.open(this, count, wanted)
                runner = opened
                show(status = opened.notice ?: opened.summary)
            } catch (e: ModelException) {
                show(status = "Model problem: ${e.message}")
            } catch (e: RuntimeException) {
                show(status = "Model problem: ${e.message ?: e.javaClass.simpleName}")
            }
        }
    }

    private fun startCamera() {
        cameraOn = true
        picked.visibility = View.GONE
        preview.visibility = View.VISIBLE
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val previewUseCase = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(worker) { frame ->
                frame.use {
                    if (!cameraOn) return@use
                    val current = runner ?: return@use
                    try {
                        // Frames arrive in the sensor's orientation: turn them upright before classifying.
                        val image = Pictures.toRgb(it.toBitmap()).rotate(it.imageInfo.rotationDegrees)
                        show(current.classify(image))
                    } catch (e: RuntimeException) {  // ModelException included: shown, never a crash
                        show(status = "Cannot classify this frame: ${e.message ?: e.javaClass.simpleName}")
                    }
                }
            }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    private fun classifyPhoto(uri: Uri) {
        cameraOn = false
        ProcessCameraProvider.getInstance(this).addListener(
            { ProcessCameraProvider.getInstance(this).get().unbindAll() }, ContextCompat.getMainExecutor(this))
        worker.execute {
            val current = runner ?: return@execute show(status = "No model loaded: see the message above.")
            try {
                val bitmap = Pictures.decode(contentResolver, uri)
                runOnUiThread {
                    preview.visibility = View.GONE
                    picked.visibility = View.VISIBLE
                    picked.setImageBitmap(bitmap)
                }
                show(current.classify(Pictures.toRgb(bitmap)))
            } catch (e: RuntimeException) {  // ModelException included: shown, never a crash
                show(status = e.message ?: "this photo cannot be classified")
            }
        }
    }

    private fun show(result: ModelRunner.Result) {
        val text = result.top.joinToString("\n") {
            String.format(Locale.ROOT, "%-24s %5.1f%%", it.label, 100 * it.probability)
        } + String.format(Locale.ROOT, "\n\n%.1f ms per frame (model only)", result.latencyMs)
        runOnUiThread { results.text = text }
    }

    private fun show(status: String) {
        runOnUiThread { this.status.text = status }
    }

    override fun onDestroy() {
        cameraOn = false
        worker.execute { runner?.close() }
        worker.shutdown()
        super.onDestroy()
    }
}
