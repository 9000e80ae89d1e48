// Validation of a whisper GGML model file before whisper.cpp reads it.
//
// whisper.cpp trusts its input: a truncated file fills tensors with garbage, an unknown tensor type
// indexes past ggml's type table, absurd hyper-parameters ask for terabytes, and a file with a valid
// header and no tensors loads as an "empty model for testing". We walk the whole layout first
// (headers only; tensor data is skipped with seeks) and reject anything whisper.cpp would crash on
// or silently accept.
#pragma once

#include <cstdint>
#include <string>

namespace dattavani {

struct ggml_file_info {
    int32_t n_vocab = 0;
    int32_t n_audio_ctx = 0;
    int32_t n_audio_state = 0;
    int32_t n_audio_head = 0;
    int32_t n_audio_layer = 0;
    int32_t n_text_ctx = 0;
    int32_t n_text_state = 0;
    int32_t n_text_head = 0;
    int32_t n_text_layer = 0;
    int32_t n_mels = 0;
    int32_t ftype = 0;
    int32_t n_tensors = 0;
    uint64_t tensor_bytes = 0;  // sum of the tensor data sizes: what the weights take in memory
    uint64_t file_bytes = 0;
};

// Reads and checks the file at `path`; throws model_load_error naming the path and the reason.
// `for_inference` also refuses what whisper.cpp loads but cannot run (F32 conv kernels); the
// quantizer passes false, as it reads such files to convert them.
ggml_file_info inspect_ggml_file(const std::string & path, bool for_inference = true);

} // namespace dattavani
