"""Dynamic int8 quantization of an ONNX model (weights int8, activations
quantized at run time), as `weft models import --quantize int8` needs it.

    python models/quantize.py IN.onnx OUT.onnx

weft runs this file with the Python that has onnxruntime (1.31) installed:
`--python`, else WEFT_PYTHON, else .weft/venv/bin/python (models/build.sh
makes it), else python3. Only MatMul weights are quantized: the projection
and transformer layers that dominate a CLIP tower's time; convolutions stay
fp32 (ConvInteger is slower than fp32 Conv on many CPUs).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: quantize.py IN.onnx OUT.onnx")
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        sys.exit(f"quantize.py: onnxruntime's quantization tools are missing ({e}); "
                 f"install them with `{sys.executable} -m pip install onnxruntime==1.31.1 onnx`")
    import onnx
    from onnx.external_data_helper import uses_external_data

    # Weights in external data files (models over 2 GB) stay external in the output.
    graph = onnx.load(str(src), load_external_data=False).graph
    large = src.stat().st_size > (1 << 30) or any(uses_external_data(t) for t in graph.initializer)
    quantize_dynamic(
        model_input=str(src),
        model_output=str(dst),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        use_external_data_format=large,
    )
    print(f"quantize.py: {src.name} -> {dst.name}")


if __name__ == "__main__":
    main()
