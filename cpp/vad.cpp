#include "vad.h"

#include "errors.h"

#include <cmath>
#include <cstdio>
#include <cstdint>

namespace dattavani {
namespace {

struct vad_segments_deleter {
    void operator()(whisper_vad_segments * s) const { whisper_vad_free_segments(s); }
};

// whisper.cpp does not check the file before reading it; refuse anything that is not a GGML file.
void check_vad_file(const std::string & path) {
    std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    uint32_t magic = 0;
    if (!f || std::fread(&magic, sizeof(magic), 1, f.get()) != 1 || magic != 0x67676d6c) {
        throw model_load_error("cannot load VAD model '" + path + "': missing or not a GGML file");
    }
}

} // namespace

vad_model::vad_model(const std::string & path, int n_threads, bool use_gpu) : path_(path) {
    check_vad_file(path);
    whisper_vad_context_params params = whisper_vad_default_context_params();
    params.n_threads = n_threads;
    params.use_gpu = use_gpu;
    ctx_.reset(whisper_vad_init_from_file_with_params(path.c_str(), params));
    if (!ctx_) {
        throw model_load_error("cannot load VAD model '" + path + "': whisper.cpp rejected it");
    }
}

std::vector<std::pair<double, double>> vad_model::speech(const float * pcm, size_t n_samples,
                                                         const vad_options & o) {
    if (!(o.threshold > 0.0f && o.threshold < 1.0f) || o.min_speech_duration_ms < 0 ||
        o.min_silence_duration_ms < 0 || o.speech_pad_ms < 0 || !(o.max_speech_duration_s > 0.0f)) {
        throw options_error("VAD options out of range: threshold must be in (0, 1), durations >= 0");
    }
    if (n_samples == 0) {
        return {};
    }
    whisper_vad_params params = whisper_vad_default_params();
    params.threshold = o.threshold;
    params.min_speech_duration_ms = o.min_speech_duration_ms;
    params.min_silence_duration_ms = o.min_silence_duration_ms;
    params.max_speech_duration_s = o.max_speech_duration_s;
    params.speech_pad_ms = o.speech_pad_ms;
    params.samples_overlap = 0.0f;  // we cut the audio ourselves

    std::lock_guard<std::mutex> lock(mutex_);
    std::unique_ptr<whisper_vad_segments, vad_segments_deleter> segments(
        whisper_vad_segments_from_samples(ctx_.get(), params, pcm, static_cast<int>(n_samples)));
    if (!segments) {
        throw transcription_error("voice activity detection failed on the audio");
    }
    std::vector<std::pair<double, double>> spans;
    const int n = whisper_vad_segments_n_segments(segments.get());
    for (int i = 0; i < n; ++i) {
        // whisper.cpp reports VAD times in centiseconds.
        spans.emplace_back(whisper_vad_segments_get_segment_t0(segments.get(), i) / 100.0,
                           whisper_vad_segments_get_segment_t1(segments.get(), i) / 100.0);
    }
    return spans;
}

} // namespace dattavani
