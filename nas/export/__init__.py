"""Export of trained candidates: int8 quantisation, ONNX, and C calling CMSIS-NN + CMSIS-DSP."""
