#include "model.h"

#include "errors.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <limits>
#include <regex>

namespace dattavani {
namespace {

constexpr int k_sample_rate = WHISPER_SAMPLE_RATE;
constexpr int k_max_decoders = 8;  // whisper.cpp's WHISPER_MAX_DECODERS
// A bound on the fallback temperatures: whisper.cpp adds temperature_inc to a float until 1.0, and
// a step below the float's precision never gets there (an endless loop that fills the memory).
constexpr size_t k_max_temperatures = 1000;

// A float as a person writes it ("1e-09", "1.2"): std::to_string prints six fixed decimals.
std::string show(float value) {
    char text[32];
    std::snprintf(text, sizeof(text), "%g", static_cast<double>(value));
    return text;
}

// The alignment heads openai-whisper found for each released model, recognised by shape. Other
// shapes (distilled or pruned models) use every head of the top half of the decoder.
whisper_alignment_heads_preset alignment_heads(const ggml_file_info & info) {
    const bool english = info.n_vocab == 51864;
    const bool symmetric = info.n_text_layer == info.n_audio_layer;
    switch (info.n_audio_layer) {
        case 4: if (symmetric) return english ? WHISPER_AHEADS_TINY_EN : WHISPER_AHEADS_TINY; break;
        case 6: if (symmetric) return english ? WHISPER_AHEADS_BASE_EN : WHISPER_AHEADS_BASE; break;
        case 12: if (symmetric) return english ? WHISPER_AHEADS_SMALL_EN : WHISPER_AHEADS_SMALL; break;
        case 24: if (symmetric) return english ? WHISPER_AHEADS_MEDIUM_EN : WHISPER_AHEADS_MEDIUM; break;
        case 32:
            if (info.n_text_layer == 4) return WHISPER_AHEADS_LARGE_V3_TURBO;
            // large-v1 and -v2 share a shape; v2 is by far the more used.
            if (symmetric) return info.n_vocab == 51866 ? WHISPER_AHEADS_LARGE_V3 : WHISPER_AHEADS_LARGE_V2;
            break;
        default: break;
    }
    return WHISPER_AHEADS_N_TOP_MOST;
}

context_ptr load_context(const std::string & path, const model_params & params, const ggml_file_info & info) {
    whisper_context_params cparams = whisper_context_default_params();
    cparams.use_gpu = params.use_gpu;
    cparams.gpu_device = params.gpu_device;
    cparams.flash_attn = params.flash_attn;
    if (params.dtw) {
        cparams.dtw_token_timestamps = true;
        cparams.dtw_aheads_preset = alignment_heads(info);
        cparams.dtw_n_top = std::max(1, info.n_text_layer / 2);
    }
    context_ptr ctx(whisper_init_from_file_with_params_no_state(path.c_str(), cparams));
    if (!ctx) {
        throw model_load_error("cannot load model '" + path +
                               "': whisper.cpp rejected it (see the dattavani.native log)");
    }
    return ctx;
}

model_params checked(model_params params) {
    if (params.max_states < 1 || params.max_states > 256) {
        throw options_error("max_states must be in [1, 256], got " + std::to_string(params.max_states));
    }
    if (params.gpu_device < 0) {
        throw options_error("gpu_device must be >= 0, got " + std::to_string(params.gpu_device));
    }
    // whisper.cpp's DTW reads attention weights that flash attention never materialises.
    if (params.dtw) {
        params.flash_attn = false;
    }
    return params;
}

// Everything whisper.cpp calls back into during whisper_full. Exceptions must not unwind through
// whisper.cpp's C frames: a throwing callback is recorded, the run is aborted, and the exception is
// rethrown once whisper_full has returned.
struct run_context {
    whisper_context * ctx;
    const transcribe_callbacks * callbacks;
    const cancel_token * cancel;
    std::exception_ptr error;

    bool should_stop() const { return error != nullptr || (cancel != nullptr && cancel->cancelled()); }
};

decoded_segment read_segment(whisper_context * ctx, whisper_state * state, int i) {
    decoded_segment seg;
    // whisper.cpp counts time in 10 ms ticks.
    seg.start = whisper_full_get_segment_t0_from_state(state, i) * 0.01;
    seg.end = whisper_full_get_segment_t1_from_state(state, i) * 0.01;
    seg.text = whisper_full_get_segment_text_from_state(state, i);
    seg.no_speech_prob = whisper_full_get_segment_no_speech_prob_from_state(state, i);
    const whisper_token eot = whisper_token_eot(ctx);
    const int n_tokens = whisper_full_n_tokens_from_state(state, i);
    double logprob_sum = 0.0;
    for (int j = 0; j < n_tokens; ++j) {
        const whisper_token_data data = whisper_full_get_token_data_from_state(state, i, j);
        if (data.id >= eot) {
            continue;  // special and timestamp tokens
        }
        decoded_token tok;
        tok.id = data.id;
        tok.text = whisper_full_get_token_text_from_state(ctx, state, i, j);
        tok.p = data.p;
        tok.plog = data.plog;
        tok.start = data.t0 * 0.01;
        tok.end = data.t1 * 0.01;
        tok.dtw_time = data.t_dtw >= 0 ? data.t_dtw * 0.01 : -1.0;
        logprob_sum += data.plog;
        seg.tokens.push_back(std::move(tok));
    }
    if (!seg.tokens.empty()) {
        seg.avg_logprob = static_cast<float>(logprob_sum / seg.tokens.size());
    }
    return seg;
}

void on_new_segment(whisper_context * ctx, whisper_state * state, int n_new, void * user_data) {
    auto * run = static_cast<run_context *>(user_data);
    if (run->error || !run->callbacks->on_segment) {
        return;
    }
    try {
        const int n = whisper_full_n_segments_from_state(state);
        for (int i = n - n_new; i < n; ++i) {
            run->callbacks->on_segment(read_segment(ctx, state, i));
        }
    } catch (...) {
        run->error = std::current_exception();
    }
}

void on_progress(whisper_context *, whisper_state *, int progress, void * user_data) {
    auto * run = static_cast<run_context *>(user_data);
    if (run->error || !run->callbacks->on_progress) {
        return;
    }
    try {
        run->callbacks->on_progress(std::clamp(progress, 0, 100) / 100.0f);
    } catch (...) {
        run->error = std::current_exception();
    }
}

bool on_encoder_begin(whisper_context *, whisper_state *, void * user_data) {
    return !static_cast<run_context *>(user_data)->should_stop();
}

bool on_abort(void * user_data) {
    return static_cast<run_context *>(user_data)->should_stop();
}

// openai-whisper's non-speech suppression also covers the music and other symbols (♩♪♫♬♭♮♯),
// which the vocabulary holds only as byte pieces ("♪" is "\xe2\x99" + "\xaa"): it suppresses
// the first token of each, with and without a leading space. whisper.cpp's suppress_nst only
// suppresses symbols that are one token, so its decoder still wrote " ♪♪♪♪" over noise.
std::vector<whisper_token> symbol_first_tokens(whisper_context * ctx) {
    std::vector<whisper_token> first_tokens;
    for (const char * symbol : {"♩", "♪", "♫", "♬", "♭", "♮", "♯"}) {
        for (const std::string & text : {std::string(symbol), " " + std::string(symbol)}) {
            whisper_token tokens[8];
            if (whisper_tokenize(ctx, text.c_str(), tokens, 8) > 0 &&
                std::find(first_tokens.begin(), first_tokens.end(), tokens[0]) == first_tokens.end()) {
                first_tokens.push_back(tokens[0]);
            }
        }
    }
    return first_tokens;
}

// What whisper.cpp's logits filter does at every step of a call, for each decoder: the tokens
// suppressed besides whisper.cpp's own, and faster-whisper's (CTranslate2's) repetition penalty
// and n-gram block over the tokens that decoder has written in the current 30 s step.
struct logits_filter {
    std::vector<whisper_token> suppressed;
    float repetition_penalty = 1.0f;
    int no_repeat_ngram_size = 0;

    bool active() const { return !suppressed.empty() || repetition_penalty != 1.0f || no_repeat_ngram_size > 0; }
};

void filter_logits(whisper_context *, whisper_state *, const whisper_token_data * tokens, int n_tokens,
                   float * logits, void * user_data) {
    const auto & filter = *static_cast<const logits_filter *>(user_data);
    constexpr float blocked = -std::numeric_limits<float>::infinity();
    for (const whisper_token token : filter.suppressed) {
        logits[token] = blocked;
    }
    if (filter.repetition_penalty != 1.0f) {
        std::vector<whisper_token> written;
        for (int i = 0; i < n_tokens; ++i) {
            written.push_back(tokens[i].id);
        }
        std::sort(written.begin(), written.end());
        written.erase(std::unique(written.begin(), written.end()), written.end());
        for (const whisper_token token : written) {
            float & logit = logits[token];
            logit = logit > 0.0f ? logit / filter.repetition_penalty : logit * filter.repetition_penalty;
        }
    }
    // A token that would complete an n-gram already written: the n-gram's last n - 1 tokens
    // are the last n - 1 written.
    const int n = filter.no_repeat_ngram_size;
    for (int i = 0; n > 0 && i + n <= n_tokens; ++i) {
        bool same = true;
        for (int k = 0; same && k < n - 1; ++k) {
            same = tokens[i + k].id == tokens[n_tokens - (n - 1) + k].id;
        }
        if (same) {
            logits[tokens[i + n - 1].id] = blocked;
        }
    }
}

void check_samples(size_t n_samples) {
    if (n_samples == 0) {
        throw options_error("the audio is empty (0 samples)");
    }
    // whisper.cpp indexes samples with int.
    if (n_samples > static_cast<size_t>(INT32_MAX)) {
        throw options_error("the audio is too long for one call (" + std::to_string(n_samples) +
                            " samples); split it into windows");
    }
}

} // namespace

void validate_full_params(const full_params & o) {
    auto fail = [](const std::string & what) { throw options_error(what); };
    // whisper.cpp prompts with the language's token, looked up by its code.
    if (!o.language.empty() && whisper_lang_id(o.language.c_str()) < 0) {
        fail("unknown language '" + o.language + "'");
    }
    // ggml's thread pool has room for GGML_MAX_N_THREADS.
    if (o.n_threads < 1 || o.n_threads > GGML_MAX_N_THREADS) {
        fail("threads must be in [1, " + std::to_string(GGML_MAX_N_THREADS) + "], got " +
             std::to_string(o.n_threads));
    }
    if (o.beam_size > k_max_decoders) {
        fail("beam_size must be at most " + std::to_string(k_max_decoders) + " (whisper.cpp's decoders), got " +
             std::to_string(o.beam_size));
    }
    if (o.best_of > k_max_decoders) {
        fail("best_of must be at most " + std::to_string(k_max_decoders) + " (whisper.cpp's decoders), got " +
             std::to_string(o.best_of));
    }
    const size_t n_temperatures = fallback_temperatures(o).size();
    // whisper.cpp falls back up to 1.0: from above it there is no temperature to decode at, and it
    // then reads a decoder that never ran (a crash).
    if (n_temperatures == 0) {
        fail("temperature must be at most 1.0 with a fallback (temperature_inc > 0), got " + show(o.temperature));
    }
    if (n_temperatures > k_max_temperatures) {
        fail("temperature_inc " + show(o.temperature_inc) + " from " + show(o.temperature) + " makes more than " +
             std::to_string(k_max_temperatures) + " fallback temperatures");
    }
    // whisper.cpp limits the first timestamp to the token of max_initial_ts within its 30 s window,
    // computed in int: past the window no such token exists, and a large value overflowed the int
    // into an index far before the logits (a segfault).
    if (!(o.max_initial_ts <= WHISPER_CHUNK_SIZE)) {
        fail("max_initial_ts must be at most " + std::to_string(WHISPER_CHUNK_SIZE) +
             " seconds (a time within whisper.cpp's window), got " + show(o.max_initial_ts));
    }
    // The logits filter writes logits[token]: a negative id is before the array.
    for (const int token : o.suppress_tokens) {
        if (token < 0) {
            fail("suppress_tokens must be token ids >= 0, got " + std::to_string(token));
        }
    }
    // whisper.cpp would start before the audio (offset_ms) or take a negative count of prompt
    // tokens (n_max_text_ctx).
    const std::pair<const char *, int> counts[] = {
        {"offset_ms", o.offset_ms}, {"n_max_text_ctx", o.n_max_text_ctx}, {"audio_ctx", o.audio_ctx}};
    for (const auto & [name, value] : counts) {
        if (value < 0) {
            fail(std::string(name) + " must be >= 0, got " + std::to_string(value));
        }
    }
    // The encoder has the model's 1500 positions (30 s) at most.
    if (o.audio_ctx > 1500) {
        fail("audio_ctx must be <= 1500, got " + std::to_string(o.audio_ctx));
    }
    // whisper.cpp compiles it with std::regex, whose dialect is not Python's.
    if (!o.suppress_regex.empty()) {
        try {
            std::regex check(o.suppress_regex);
        } catch (const std::regex_error & e) {
            fail("suppress_regex '" + o.suppress_regex + "' is not a valid regular expression: " + e.what());
        }
    }
}

std::vector<float> fallback_temperatures(const full_params & o) {
    if (!(o.temperature_inc > 0.0f)) {
        return {o.temperature};
    }
    // whisper_full's own loop ("a set of temperatures to use" in whisper.cpp), in the same float
    // arithmetic, so that a last step that lands just past 1.0 is dropped here as it is there.
    std::vector<float> temperatures;
    for (float t = o.temperature; t < 1.0f + 1e-6f && temperatures.size() <= k_max_temperatures;
         t += o.temperature_inc) {
        temperatures.push_back(t);
    }
    return temperatures;
}

state_pool::lease::~lease() {
    if (state_) {
        pool_->release(std::move(state_));
    }
}

state_pool::lease state_pool::acquire(const cancel_token * cancel) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (idle_.empty() && created_ >= max_states_) {
        // Wake up now and then so a cancelled call stops waiting for a state.
        available_.wait_for(lock, std::chrono::milliseconds(50));
        if (cancel != nullptr && cancel->cancelled()) {
            throw cancelled_error("transcription cancelled");
        }
    }
    if (!idle_.empty()) {
        state_ptr state = std::move(idle_.back());
        idle_.pop_back();
        return lease(*this, std::move(state));
    }
    created_ += 1;
    lock.unlock();
    // Allocating a state (KV caches, compute buffers) is slow: not under the lock.
    state_ptr state(whisper_init_state(ctx_));
    if (!state) {
        lock.lock();
        created_ -= 1;
        available_.notify_one();
        throw transcription_error("whisper.cpp could not allocate a state (out of memory?)");
    }
    return lease(*this, std::move(state));
}

void state_pool::release(state_ptr state) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        idle_.push_back(std::move(state));
    }
    available_.notify_one();
}

int state_pool::created() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return created_;
}

model::model(const std::string & path, const model_params & params)
    : path_(path),
      params_(checked(params)),
      info_(inspect_ggml_file(path)),
      ctx_(load_context(path, params_, info_)),
      pool_(ctx_.get(), params_.max_states),
      symbol_first_tokens_(symbol_first_tokens(ctx_.get())) {}

std::vector<std::pair<std::string, float>> model::detect_language_with_state(
    whisper_state * state, const float * pcm, size_t n_samples, int n_threads, int offset_ms) {
    if (!is_multilingual()) {
        return {{"en", 1.0f}};
    }
    // The detector looks at one 30 s window: no need to compute the mel of the whole file.
    const size_t window = static_cast<size_t>(offset_ms) * k_sample_rate / 1000 + 30 * k_sample_rate;
    const size_t n = std::min(n_samples, window);
    if (whisper_pcm_to_mel_with_state(ctx_.get(), state, pcm, static_cast<int>(n), n_threads) != 0) {
        throw transcription_error("whisper.cpp failed to compute the mel spectrogram");
    }
    std::vector<float> probs(static_cast<size_t>(whisper_lang_max_id()) + 1, 0.0f);
    if (whisper_lang_auto_detect_with_state(ctx_.get(), state, offset_ms, n_threads, probs.data()) < 0) {
        throw transcription_error("whisper.cpp failed to detect the language");
    }
    std::vector<std::pair<std::string, float>> table;
    table.reserve(probs.size());
    for (size_t i = 0; i < probs.size(); ++i) {
        table.emplace_back(whisper_lang_str(static_cast<int>(i)), probs[i]);
    }
    std::stable_sort(table.begin(), table.end(),
                     [](const auto & a, const auto & b) { return a.second > b.second; });
    return table;
}

std::vector<std::pair<std::string, float>> model::detect_language(const float * pcm, size_t n_samples,
                                                                  int n_threads, int offset_ms,
                                                                  const cancel_token * cancel) {
    check_samples(n_samples);
    if (n_threads < 1 || offset_ms < 0) {
        throw options_error("threads must be >= 1 and offset_ms >= 0");
    }
    state_pool::lease lease = pool_.acquire(cancel);
    return detect_language_with_state(lease.get(), pcm, n_samples, n_threads, offset_ms);
}

full_result model::transcribe(const float * pcm, size_t n_samples, const full_params & o,
                              const transcribe_callbacks & callbacks, const cancel_token * cancel) {
    check_samples(n_samples);
    validate_full_params(o);
    state_pool::lease lease = pool_.acquire(cancel);
    whisper_state * state = lease.get();

    full_result result;
    if (!is_multilingual()) {
        result.language = "en";
        result.language_probs = {{"en", 1.0f}};
    } else if (o.language.empty()) {
        // whisper_full detects too, but does not return the probabilities.
        result.language_probs = detect_language_with_state(state, pcm, n_samples, o.n_threads, o.offset_ms);
        result.language = result.language_probs.front().first;
        result.language_probability = result.language_probs.front().second;
    } else {
        result.language = o.language;
        result.language_probs = {{o.language, 1.0f}};
    }

    // One beam is greedy decoding, as in openai-whisper and faster-whisper. whisper.cpp's beam search
    // draws each beam's candidates from the softmax, so a one-beam "search" would sample at
    // temperature 1: a different text on every call.
    whisper_full_params p = whisper_full_default_params(o.beam_size > 1 ? WHISPER_SAMPLING_BEAM_SEARCH
                                                                         : WHISPER_SAMPLING_GREEDY);
    p.n_threads = o.n_threads;
    // whisper.cpp keeps the decoded text in the state and, without no_context, prompts the next
    // call with it: a pooled state would leak one caller's transcript into another's. no_context
    // only clears that history at the start of a call; within the call each 30 s window is still
    // prompted with the previous one's text unless n_max_text_ctx is 0.
    p.no_context = true;
    p.n_max_text_ctx = o.condition_on_previous_text ? o.n_max_text_ctx : 0;
    p.offset_ms = o.offset_ms;
    p.duration_ms = o.duration_ms;
    p.translate = o.translate;
    p.no_timestamps = o.no_timestamps;
    p.single_segment = o.single_segment;
    p.print_special = false;
    p.print_progress = false;
    p.print_realtime = false;
    p.print_timestamps = false;
    p.token_timestamps = o.token_timestamps;
    p.max_len = o.max_len;
    p.split_on_word = o.split_on_word;
    p.max_tokens = o.max_tokens;
    p.audio_ctx = o.audio_ctx;
    p.suppress_regex = o.suppress_regex.empty() ? nullptr : o.suppress_regex.c_str();
    p.initial_prompt = o.initial_prompt.empty() ? nullptr : o.initial_prompt.c_str();
    // faster-whisper's prefix: forced as the first window's first tokens (after a timestamp at 0)
    // by whisper.cpp's decoder, fixed at extraction (cmake/WhisperCppFixes.cmake). Room is left
    // for the timestamp and a few decoded tokens within the window's half of the text context.
    const std::vector<int> prefix_tokens = o.prefix.empty() ? std::vector<int>() : tokenize(o.prefix);
    const int max_prefix_tokens = whisper_n_text_ctx(ctx_.get()) / 2 - 8;
    if (static_cast<int>(prefix_tokens.size()) > max_prefix_tokens) {
        throw options_error("prefix is " + std::to_string(prefix_tokens.size()) + " tokens; at most " +
                            std::to_string(max_prefix_tokens) + " fit in a window");
    }
#ifdef DATTAVANI_WHISPER_CPP_FIXED
    p.prefix_tokens = prefix_tokens.data();
    p.prefix_n_tokens = static_cast<int>(prefix_tokens.size());
#else
    if (!prefix_tokens.empty()) {
        throw options_error("prefix needs whisper.cpp with dattavani's fixes (cmake/WhisperCppFixes.cmake); "
                            "this build uses a checkout as it is (DATTAVANI_WHISPER_CPP_DIR)");
    }
#endif
    p.carry_initial_prompt = o.carry_initial_prompt;
    p.language = result.language.c_str();
    p.detect_language = false;
    p.suppress_blank = o.suppress_blank;
    p.suppress_nst = o.suppress_non_speech_tokens;
    // Suppressed at every step besides what whisper.cpp suppresses itself: the caller's token ids,
    // and the music symbols' first pieces with the non-speech tokens. Lives until whisper_full
    // returns.
    logits_filter filter;
    filter.suppressed.assign(o.suppress_tokens.begin(), o.suppress_tokens.end());
    const int n_vocab = whisper_n_vocab(ctx_.get());
    for (const whisper_token token : filter.suppressed) {
        if (token >= n_vocab) {
            throw options_error("suppress_tokens: " + std::to_string(token) + " is not a token of this model (" +
                                std::to_string(n_vocab) + " tokens)");
        }
    }
    if (o.suppress_non_speech_tokens) {
        filter.suppressed.insert(filter.suppressed.end(), symbol_first_tokens_.begin(), symbol_first_tokens_.end());
    }
    filter.repetition_penalty = o.repetition_penalty;
    filter.no_repeat_ngram_size = o.no_repeat_ngram_size;
    if (filter.active()) {
        p.logits_filter_callback = filter_logits;
        p.logits_filter_callback_user_data = &filter;
    }
    p.temperature = o.temperature;
    p.max_initial_ts = o.max_initial_ts;
    p.length_penalty = o.length_penalty;
    p.temperature_inc = o.temperature_inc;
    p.entropy_thold = o.entropy_thold;
    p.logprob_thold = o.logprob_thold;
    p.no_speech_thold = o.no_speech_thold;
    p.greedy.best_of = o.best_of;
    p.beam_search.beam_size = o.beam_size > 0 ? o.beam_size : 1;
    p.beam_search.patience = o.patience;

    run_context run{ctx_.get(), &callbacks, cancel, nullptr};
    p.new_segment_callback = on_new_segment;
    p.new_segment_callback_user_data = &run;
    p.progress_callback = on_progress;
    p.progress_callback_user_data = &run;
    p.encoder_begin_callback = on_encoder_begin;
    p.encoder_begin_callback_user_data = &run;
    p.abort_callback = on_abort;
    p.abort_callback_user_data = &run;

    int rc = 0;
    try {
        rc = whisper_full_with_state(ctx_.get(), state, p, pcm, static_cast<int>(n_samples));
    } catch (const std::exception & e) {
        // whisper.cpp is C++ inside: std::regex, allocations and the like may throw through it.
        throw transcription_error(std::string("whisper.cpp failed to transcribe: ") + e.what());
    }
    if (run.error) {
        std::rethrow_exception(run.error);
    }
    if (cancel != nullptr && cancel->cancelled()) {
        throw cancelled_error("transcription cancelled");
    }
    if (rc != 0) {
        throw transcription_error("whisper.cpp failed to transcribe (whisper_full returned " +
                                  std::to_string(rc) + "; see the dattavani.native log)");
    }
    const int n_segments = whisper_full_n_segments_from_state(state);
    result.segments.reserve(static_cast<size_t>(n_segments));
    for (int i = 0; i < n_segments; ++i) {
        result.segments.push_back(read_segment(ctx_.get(), state, i));
    }
    return result;
}

std::vector<int> model::tokenize(const std::string & text) const {
    const int capacity = static_cast<int>(text.size()) + 16;
    std::vector<whisper_token> tokens(static_cast<size_t>(capacity));
    const int n = whisper_tokenize(ctx_.get(), text.c_str(), tokens.data(), capacity);
    if (n < 0) {
        throw options_error("text is too long to tokenize");
    }
    tokens.resize(static_cast<size_t>(n));
    return {tokens.begin(), tokens.end()};
}

} // namespace dattavani
