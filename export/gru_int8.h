// gru_int8.tflite for TensorFlow Lite Micro, written by python -m kws.export.
#ifndef KWS_GRU_INT8_H_
#define KWS_GRU_INT8_H_

// The flatbuffer; keep it 16-byte aligned in flash.
extern const unsigned char g_gru_int8_model[];
extern const unsigned int g_gru_int8_model_len;

// The smallest tensor arena TFLM ran the model in (tflite_micro's interpreter on x86-64);
// allow a little more on a 32-bit target.
constexpr unsigned int kGruInt8ArenaBytes = 62368;

// The ops it needs: tflite::MicroMutableOpResolver<kGruInt8OpCount>.
constexpr int kGruInt8OpCount = 14;  // ADD, CONCATENATION, DEQUANTIZE, FULLY_CONNECTED, LESS, LOGISTIC, MUL, QUANTIZE, SOFTMAX, SPLIT, STRIDED_SLICE, SUB, TANH, WHILE

#ifdef TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
inline TfLiteStatus AddGruInt8Ops(
    tflite::MicroMutableOpResolver<kGruInt8OpCount>& resolver) {
  if (resolver.AddAdd() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddConcatenation() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddDequantize() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddFullyConnected() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddLess() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddLogistic() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddMul() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddQuantize() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddSoftmax() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddSplit() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddStridedSlice() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddSub() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddTanh() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddWhile() != kTfLiteOk) return kTfLiteError;
  return kTfLiteOk;
}
#endif

#endif  // KWS_GRU_INT8_H_
