// Model: one loaded whisper GGML file, shared by every thread that transcribes with it.
//
// The weights live in one whisper_context; each transcription runs on a whisper_state (KV caches,
// mel, compute buffers) leased from a bounded pool owned by the model, so N threads transcribe at
// once with one copy of the weights. Nothing from one call is left on the model for the next.
// This layer knows nothing of Python: module.cpp binds it.
#pragma once

#include "ggml_file.h"

#include "whisper.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dattavani {

// How a model is loaded. No defaults: dattavani.models.LoadParameters owns them and gives each.
struct model_params {
    bool use_gpu;
    int gpu_device;
    bool flash_attn;
    bool dtw;        // DTW token times from cross-attention (forces flash attention off)
    int max_states;  // transcriptions that may run at once
};

// Per-call decoding options: whisper_full_params without the callbacks, and what dattavani adds
// to the decoder. Defaults follow openai-whisper's transcribe(), not whisper.cpp's.
struct full_params {
    std::string language;  // "" = detect
    bool translate = false;
    int n_threads = 4;
    int best_of = 5;       // candidates when sampling at temperature > 0
    int beam_size = 0;     // 0 or 1 = greedy
    float patience = -1.0f;
    float temperature = 0.0f;
    float temperature_inc = 0.2f;  // 0 disables the fallback (see fallback_temperatures)
    float entropy_thold = 2.4f;
    float logprob_thold = -1.0f;
    float no_speech_thold = 0.6f;
    float length_penalty = -1.0f;
    float max_initial_ts = 1.0f;  // seconds, at most 30; 0 = no limit
    std::string initial_prompt;
    std::string prefix;    // the text the call's first 30 s window starts with ("" = none)
    bool carry_initial_prompt = false;
    bool condition_on_previous_text = true;
    bool suppress_blank = true;
    bool suppress_non_speech_tokens = true;
    std::vector<int> suppress_tokens;  // token ids never to emit (openai-whisper's, less its -1)
    float repetition_penalty = 1.0f;   // faster-whisper's: > 1 makes written tokens less likely
    int no_repeat_ngram_size = 0;      // faster-whisper's: no n-gram of this size twice; 0 = off
    std::string suppress_regex;
    bool token_timestamps = false;
    bool no_timestamps = false;
    bool single_segment = false;
    int max_len = 0;       // max segment length in characters, 0 = no limit
    bool split_on_word = false;
    int max_tokens = 0;    // max tokens per segment, 0 = no limit
    int offset_ms = 0;
    int duration_ms = 0;
    int audio_ctx = 0;     // 0 = the model's (1500)
    int n_max_text_ctx = 16384;
};

struct decoded_token {
    int id = 0;
    std::string text;      // raw bytes: a multi-byte character may span tokens
    float p = 0.0f;
    float plog = 0.0f;
    double start = 0.0;    // seconds; meaningful with token_timestamps
    double end = 0.0;
    double dtw_time = -1.0; // seconds the DTW alignment enters this token; < 0 without DTW
};

struct decoded_segment {
    double start = 0.0;    // seconds
    double end = 0.0;
    std::string text;
    float avg_logprob = 0.0f;
    float no_speech_prob = 0.0f;
    std::vector<decoded_token> tokens;  // text tokens only (no special or timestamp tokens)
};

struct full_result {
    std::vector<decoded_segment> segments;
    std::string language;
    float language_probability = 1.0f;
    std::vector<std::pair<std::string, float>> language_probs;  // most likely first
};

// Set from any thread; checked by whisper.cpp between graph nodes and before each encoder run.
class cancel_token {
public:
    void cancel() { cancelled_.store(true); }
    bool cancelled() const { return cancelled_.load(); }

private:
    std::atomic<bool> cancelled_{false};
};

struct transcribe_callbacks {
    std::function<void(float)> on_progress;                  // fraction done, 0..1
    std::function<void(const decoded_segment &)> on_segment;  // each new segment as it is decoded
};

struct context_deleter {
    void operator()(whisper_context * ctx) const { whisper_free(ctx); }
};
struct state_deleter {
    void operator()(whisper_state * state) const { whisper_free_state(state); }
};
using context_ptr = std::unique_ptr<whisper_context, context_deleter>;
using state_ptr = std::unique_ptr<whisper_state, state_deleter>;

// A bounded pool of whisper_states for one context. acquire() blocks while all are leased.
class state_pool {
public:
    class lease {
    public:
        lease(state_pool & pool, state_ptr state) : pool_(&pool), state_(std::move(state)) {}
        lease(lease && other) noexcept = default;
        lease(const lease &) = delete;
        lease & operator=(const lease &) = delete;
        lease & operator=(lease &&) = delete;
        ~lease();
        whisper_state * get() const { return state_.get(); }

    private:
        state_pool * pool_;
        state_ptr state_;
    };

    state_pool(whisper_context * ctx, int max_states) : ctx_(ctx), max_states_(max_states) {}
    lease acquire(const cancel_token * cancel);
    int created() const;
    int max_states() const { return max_states_; }

private:
    void release(state_ptr state);

    whisper_context * ctx_;
    const int max_states_;
    mutable std::mutex mutex_;
    std::condition_variable available_;
    std::vector<state_ptr> idle_;
    int created_ = 0;
};

class model {
public:
    model(const std::string & path, const model_params & params);

    const std::string & path() const { return path_; }
    const ggml_file_info & info() const { return info_; }
    const model_params & params() const { return params_; }
    bool is_multilingual() const { return whisper_is_multilingual(ctx_.get()) != 0; }
    std::string type_name() const { return whisper_model_type_readable(ctx_.get()); }
    int states_created() const { return pool_.created(); }

    full_result transcribe(const float * pcm, size_t n_samples, const full_params & params,
                           const transcribe_callbacks & callbacks, const cancel_token * cancel);

    // Probabilities of every language for the first 30 s after offset, most likely first.
    std::vector<std::pair<std::string, float>> detect_language(const float * pcm, size_t n_samples,
                                                               int n_threads, int offset_ms,
                                                               const cancel_token * cancel);

    std::vector<int> tokenize(const std::string & text) const;

private:
    std::vector<std::pair<std::string, float>> detect_language_with_state(
        whisper_state * state, const float * pcm, size_t n_samples, int n_threads, int offset_ms);

    std::string path_;
    model_params params_;
    ggml_file_info info_;
    context_ptr ctx_;   // declared before the pool: states are freed before the weights
    state_pool pool_;
    // The first token of each music symbol, suppressed with the non-speech tokens (see model.cpp).
    std::vector<whisper_token> symbol_first_tokens_;
};

// What whisper.cpp needs of the parameters to run safely, and what only it can check (its decoder
// count, language codes, std::regex, its fallback schedule): options_error otherwise. Every other rule is
// dattavani.options.TranscribeOptions' (python/dattavani/options.py), which runs this one too.
void validate_full_params(const full_params & params);

// The temperatures whisper_full decodes a window at, in order, as whisper.cpp makes them from
// temperature and temperature_inc (up to 1.0); stops past k_max_temperatures (model.cpp).
std::vector<float> fallback_temperatures(const full_params & params);

} // namespace dattavani
