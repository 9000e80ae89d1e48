// Silero voice activity detection through whisper.cpp's whisper_vad_* API.
//
// whisper_full_with_state skips whisper.cpp's own VAD (it only runs in whisper_full), so the
// state-pool path detects speech here and the Python layer transcribes the speech alone, mapping
// times back to the original timeline.
#pragma once

#include "whisper.h"

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dattavani {

// faster-whisper's VadOptions defaults (dattavani.vad.VadOptions; a test keeps them equal):
// min_speech_duration_ms is 0 there, where whisper.cpp's own default is 250.
struct vad_options {
    float threshold = 0.5f;
    int min_speech_duration_ms = 0;
    int min_silence_duration_ms = 2000;
    float max_speech_duration_s = 1e9f;
    int speech_pad_ms = 400;
};

struct vad_context_deleter {
    void operator()(whisper_vad_context * ctx) const { whisper_vad_free(ctx); }
};

class vad_model {
public:
    vad_model(const std::string & path, int n_threads, bool use_gpu);

    // Speech spans of 16 kHz mono samples, in seconds, in order.
    std::vector<std::pair<double, double>> speech(const float * pcm, size_t n_samples,
                                                  const vad_options & options);

private:
    std::string path_;
    std::mutex mutex_;  // a whisper_vad_context holds the LSTM state of one stream at a time
    std::unique_ptr<whisper_vad_context, vad_context_deleter> ctx_;
};

} // namespace dattavani
