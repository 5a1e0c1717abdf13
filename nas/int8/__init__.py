"""int8 arithmetic of the TFLite rules CMSIS-NN implements: the numpy integer reference of every kernel
(`intref`, bit-exact with CMSIS-NN) and how float tensors become int8 parameters (`qparams`). Plain
numpy, below every layer kind, so each kind's quantisation and integer reference are written with it."""
