// Quantization of a whisper GGML model file, natively through ggml (what whisper.cpp's
// examples/quantize does, without its crashes on bad input and with an atomic output).
#pragma once

#include <string>

namespace dattavani {

// Writes the model at `src_path` to `dst_path` with its weight matrices stored as `type`: "q8_0",
// "q5_0", "q5_1", "q4_0", or "f16" (from an f32 model). Whatever whisper.cpp keeps in higher
// precision stays so: biases, layer norms, positional embeddings and conv biases keep their type,
// conv kernels become (or stay) f16. The source must be f32 or f16.
//
// The output is written to a temporary file in the destination's folder and renamed over
// `dst_path` only when complete. Throws options_error for an unknown `type`, model_load_error for a
// source whisper.cpp could not load, and conversion_error for a source that is already quantized
// or an output that cannot be written.
void quantize_model(const std::string & src_path, const std::string & dst_path, const std::string & type);

} // namespace dattavani
