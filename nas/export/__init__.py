"""Export of trained candidates: int8 quantisation, ONNX, and C calling CMSIS-NN + CMSIS-DSP written
from the templates in `templates/`; `pipeline` runs it per trial, `python -m nas.export` is its CLI."""
