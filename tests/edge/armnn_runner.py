"""Run a .tflite file through Arm NN (its TfLiteParser and a CPU backend), for tests/edge/test_armnn.py.

Runs under Debian's /usr/bin/python3, the interpreter that python3-pyarmnn is built for (with Debian's numpy 1.x),
never in the kit's venv (numpy 2): inputs and outputs travel as .npy files.

    python3 armnn_runner.py backends                                   the backends Arm NN offers, one per line
    python3 armnn_runner.py run MODEL INPUTS.npy OUTPUTS.npy [BACKEND]  float32 (N, H, W, C) in, float32 (N, K) out

The parsed network has the file's batch of 1, so the images run one workload each. Integer I/O is quantized and
dequantized with the binding's scale and offset, as the edge runtime does.
"""

import sys

import numpy as np
import pyarmnn as ann


def backends() -> list[str]:
    runtime = ann.IRuntime(ann.CreationOptions())
    return [str(b) for b in runtime.GetDeviceSpec().GetSupportedBackends()]


def run(model: str, inputs: str, outputs: str, backend: str = "CpuRef") -> None:
    parser = ann.ITfLiteParser()
    network = parser.CreateNetworkFromBinaryFile(model)
    runtime = ann.IRuntime(ann.CreationOptions())
    optimized, messages = ann.Optimize(network, [ann.BackendId(backend)], runtime.GetDeviceSpec(),
                                       ann.OptimizerOptions())
    network_id, _ = runtime.LoadNetwork(optimized)
    (input_name,) = parser.GetSubgraphInputTensorNames(0)
    (output_name,) = parser.GetSubgraphOutputTensorNames(0)
    input_binding = parser.GetNetworkInputBindingInfo(0, input_name)
    output_binding = parser.GetNetworkOutputBindingInfo(0, output_name)
    info = input_binding[1]
    results = []
    for image in np.load(inputs).astype(np.float32):
        x = image[None]
        if info.IsQuantized():
            dtype = np.uint8 if info.GetDataType() == ann.DataType_QAsymmU8 else np.int8
            bounds = np.iinfo(dtype)
            x = np.clip(np.round(x / info.GetQuantizationScale()) + info.GetQuantizationOffset(),
                        bounds.min, bounds.max).astype(dtype)
        input_tensors = ann.make_input_tensors([input_binding], [x])
        output_tensors = ann.make_output_tensors([output_binding])
        runtime.EnqueueWorkload(network_id, input_tensors, output_tensors)
        y = ann.workload_tensors_to_ndarray(output_tensors)[0].reshape(-1)
        out_info = output_binding[1]
        if out_info.IsQuantized():
            y = (y.astype(np.float32) - out_info.GetQuantizationOffset()) * out_info.GetQuantizationScale()
        results.append(y.astype(np.float32))
    np.save(outputs, np.stack(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["backends"]:
        print("\n".join(backends()))
    elif sys.argv[1:2] == ["run"] and len(sys.argv) in (5, 6):
        run(*sys.argv[2:])
    else:
        sys.exit(__doc__)
