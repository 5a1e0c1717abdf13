"""int8: the TFLite rules CMSIS-NN implements (`quantize`), their numpy reference (`intref`) and the
front-end's features quantised into the network input (`inputq`); used by export, evaluate and
quantisation-aware fine-tuning."""
