// gru_int8_stream.tflite for TensorFlow Lite Micro, written by python -m kws.export.
#ifndef KWS_GRU_INT8_STREAM_H_
#define KWS_GRU_INT8_STREAM_H_

// The flatbuffer; keep it 16-byte aligned in flash.
extern const unsigned char g_gru_int8_stream_model[];
extern const unsigned int g_gru_int8_stream_model_len;

// The smallest tensor arena TFLM ran the model in (tflite_micro's interpreter on x86-64);
// allow a little more on a 32-bit target.
constexpr unsigned int kGruInt8StreamArenaBytes = 9648;

// The ops it needs: tflite::MicroMutableOpResolver<kGruInt8StreamOpCount>.
constexpr int kGruInt8StreamOpCount = 8;  // ADD, FULLY_CONNECTED, LOGISTIC, MUL, SOFTMAX, SPLIT, SUB, TANH

#ifdef TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
inline TfLiteStatus AddGruInt8StreamOps(
    tflite::MicroMutableOpResolver<kGruInt8StreamOpCount>& resolver) {
  if (resolver.AddAdd() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddFullyConnected() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddLogistic() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddMul() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddSoftmax() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddSplit() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddSub() != kTfLiteOk) return kTfLiteError;
  if (resolver.AddTanh() != kTfLiteOk) return kTfLiteError;
  return kTfLiteOk;
}
#endif

#endif  // KWS_GRU_INT8_STREAM_H_
