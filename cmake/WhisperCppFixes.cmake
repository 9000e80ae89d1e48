# Fixes to whisper.cpp 1.8.5's source, applied once when FetchWhisperCpp.cmake extracts it.
#
# Each is an exact text replacement that must match exactly once: a different source fails the
# build here instead of building something half fixed. The stamp of the extraction holds this
# file's SHA-256, so editing a fix re-extracts the source. A checkout passed with
# DATTAVANI_WHISPER_CPP_DIR is used as it is, without these fixes.

function(dattavani_replace_once path old new)
    file(READ "${path}" content)
    string(FIND "${content}" "${old}" first)
    string(FIND "${content}" "${old}" last REVERSE)
    if(first EQUAL -1 OR NOT first EQUAL last)
        message(FATAL_ERROR "dattavani: a fix to whisper.cpp does not apply to ${path}: the text "
            "it replaces is not there exactly once:\n${old}")
    endif()
    string(REPLACE "${old}" "${new}" content "${content}")
    file(WRITE "${path}" "${content}")
endfunction()

function(dattavani_fix_whisper_cpp dir)
    set(source "${dir}/src/whisper.cpp")

    # no_speech_prob (open upstream: ggml-org/whisper.cpp#3945, #4068). openai-whisper takes it
    # from the logits at the start-of-transcript token; whisper.cpp reads row 0 of its logits,
    # which it never writes, since it copies only the last prompt token's row: 1/n_vocab on a
    # state's first call, then whatever an earlier decode left there. So the no-speech check
    # (skip a silent window, no fallback for it) never worked, the value each segment reports
    # was noise, and a pooled state's history changed the fallback decisions of the next call.
    # The fix asks for the SOT row's logits and reads that row.
    dattavani_replace_once("${source}" [=[
                whisper_batch_prep_legacy(state->batch, prompt.data(), prompt.size(), 0, 0);
]=] [=[
                whisper_batch_prep_legacy(state->batch, prompt.data(), prompt.size(), 0, 0);
                // dattavani: the logits at the SOT token, for no_speech_prob below.
                const size_t i_sot = prompt.size() - prompt_init.size();
                state->batch.logits[i_sot] = 1;
]=])
    dattavani_replace_once("${source}" [=[
                    whisper_compute_logprobs(state->logits, n_logits, logprobs);
                    whisper_compute_probs(state->logits, n_logits, logprobs, probs);
]=] [=[
                    const std::vector<float> logits_sot(state->logits.begin() + i_sot*n_logits,
                                                        state->logits.begin() + (i_sot + 1)*n_logits);
                    whisper_compute_logprobs(logits_sot, n_logits, logprobs);
                    whisper_compute_probs(logits_sot, n_logits, logprobs, probs);
]=])

    # Logits only for the tokens a batch asks them for. whisper.cpp multiplied every token of a
    # prompt (the previous window's text, up to 224 tokens, at each window and each fallback
    # temperature) by the whole vocabulary, then kept one row: about half of a prompt decode's
    # work for base, more for tiny. The rows asked for are gathered before that product. A batch
    # asks for at most one row per decoder (beam search), so the reservation graph (worst_case)
    # sizes the decode buffer for WHISPER_MAX_DECODERS rows instead of the whole text context:
    # that buffer held 448 rows of logits, ~93 MB per decoder state. A batch that asked for more
    # would grow it (ggml's allocator reallocates a buffer too small for a graph).
    dattavani_replace_once("${source}" [=[
static struct ggml_cgraph * whisper_build_graph_decoder(
]=] [=[
// dattavani: the batch's tokens whose logits are computed, in order: those it asks for, or all
// of them when it asks for none.
static std::vector<int32_t> whisper_batch_output_ids(const whisper_batch & batch) {
    std::vector<int32_t> ids;
    for (int i = 0; i < batch.n_tokens; ++i) {
        if (batch.logits[i] != 0) {
            ids.push_back(i);
        }
    }
    if (ids.empty()) {
        for (int i = 0; i < batch.n_tokens; ++i) {
            ids.push_back(i);
        }
    }
    return ids;
}

static struct ggml_cgraph * whisper_build_graph_decoder(
]=])
    dattavani_replace_once("${source}" [=[
    //cur = ggml_view_2d(ctx0, cur, cur->ne[0], 1, cur->nb[1], (cur->ne[1] - 1)*cur->nb[1]);

    struct ggml_tensor * logits = ggml_mul_mat(ctx0, model.d_te, cur);
]=] [=[
    //cur = ggml_view_2d(ctx0, cur, cur->ne[0], 1, cur->nb[1], (cur->ne[1] - 1)*cur->nb[1]);

    // dattavani: only the rows of whisper_batch_output_ids (in the reservation graph, one per
    // decoder at most).
    {
        const int n_outputs = worst_case ? std::min(n_tokens, WHISPER_MAX_DECODERS)
                                         : (int) whisper_batch_output_ids(batch).size();
        struct ggml_tensor * out_ids = ggml_new_tensor_1d(ctx0, GGML_TYPE_I32, n_outputs);
        ggml_set_name(out_ids, "out_ids");
        ggml_set_input(out_ids);
        cur = ggml_get_rows(ctx0, cur, out_ids);
    }

    struct ggml_tensor * logits = ggml_mul_mat(ctx0, model.d_te, cur);
]=])
    dattavani_replace_once("${source}" [=[
        logits = ggml_graph_node(gf, -1);

        if (!ggml_graph_compute_helper(sched, gf, n_threads)) {
]=] [=[
        {
            // dattavani: which tokens' rows the logits are computed for (see the graph).
            const std::vector<int32_t> out_ids = whisper_batch_output_ids(batch);
            struct ggml_tensor * out_ids_t = ggml_graph_get_tensor(gf, "out_ids");
            ggml_backend_tensor_set(out_ids_t, out_ids.data(), 0, out_ids.size()*sizeof(int32_t));
        }

        logits = ggml_graph_node(gf, -1);

        if (!ggml_graph_compute_helper(sched, gf, n_threads)) {
]=])
    dattavani_replace_once("${source}" [=[
    logits_out.resize(n_tokens*n_vocab);
    for (int i = 0; i < n_tokens; i++) {
        if (batch.logits[i] == 0) {
            continue;
        }
        ggml_backend_tensor_get(logits, logits_out.data() + (n_vocab*i), sizeof(float)*(n_vocab*i), sizeof(float)*n_vocab);
    }
]=] [=[
    logits_out.resize(n_tokens*n_vocab);
    // dattavani: the logits hold the rows of whisper_batch_output_ids, in order.
    const std::vector<int32_t> out_ids = whisper_batch_output_ids(batch);
    for (size_t row = 0; row < out_ids.size(); ++row) {
        ggml_backend_tensor_get(logits, logits_out.data() + n_vocab*out_ids[row], sizeof(float)*n_vocab*row, sizeof(float)*n_vocab);
    }
]=])

    # The first decoder's random generator is seeded when the state is made and never again
    # (the others are reseeded on every call): sampling at a fallback temperature and beam search
    # (which draws its candidates) gave a different text for the same audio on each call with a
    # pooled state. Reseeding it like the others makes every call decode as the first one did.
    dattavani_replace_once("${source}" [=[
    // TAGS: WHISPER_DECODER_INIT
    for (int j = 1; j < n_decoders; j++) {
]=] [=[
    // dattavani: reseed the first decoder too, as whisper_init_state seeded it.
    state->decoders[0].rng = std::mt19937(0);

    // TAGS: WHISPER_DECODER_INIT
    for (int j = 1; j < n_decoders; j++) {
]=])

    # With DTW token timestamps (word_timestamps), the new-segment callback is deferred until the
    # alignment is done, but the loop that makes it is wrong: it passes a segment's index where
    # the callback takes the number of new segments, and bounds it by that number, so after the
    # first 30 s nothing is reported and before it segments were missed or repeated (jfk: one
    # callback for two segments). The callback is made once, with the number of new segments,
    # as without DTW. (Reported downstream as tazz4843/whisper-rs#208.)
    dattavani_replace_once("${source}" [=[
                        for (int seg = (int) result_all.size() - n_segments; seg < n_segments; seg++) {
                            params.new_segment_callback(ctx, state, seg, params.new_segment_callback_user_data);
                        }
]=] [=[
                        // dattavani: once, with the number of new segments.
                        params.new_segment_callback(ctx, state, n_segments, params.new_segment_callback_user_data);
]=])

    # faster-whisper's and openai-whisper's prefix: the first window's text starts with given
    # tokens, forced after the start-of-transcript tokens (with timestamps, after a timestamp at
    # 0, as faster-whisper puts it), then decoded on from. whisper.cpp has no such parameter.
    # whisper_full_params gains the tokens; at the call's first window (each temperature of it),
    # a decoder's step whose index holds a forced token can give only that token (probability 1),
    # in greedy decoding, sampling and beam search alike. The tokens are part of the output, as
    # in faster-whisper, and of the next window's prompt.
    dattavani_replace_once("${dir}/include/whisper.h" [=[
        whisper_vad_params vad_params;
    };
]=] [=[
        whisper_vad_params vad_params;

        // dattavani: tokens forced at the start of the first window's text (a prefix).
        const whisper_token * prefix_tokens;
        int                   prefix_n_tokens;
    };
]=])
    dattavani_replace_once("${source}" [=[
        /* vad_params =*/ whisper_vad_default_params(),
]=] [=[
        /* vad_params =*/ whisper_vad_default_params(),

        /*.prefix_tokens   =*/ nullptr,
        /*.prefix_n_tokens =*/ 0,
]=])
    dattavani_replace_once("${source}" [=[
    std::vector<whisper_token>   prompt_past1; // dynamic context from decoded output
]=] [=[
    std::vector<whisper_token>   prompt_past1; // dynamic context from decoded output

    // dattavani: the tokens the current window's text must start with (the prefix).
    std::vector<whisper_token>   tokens_forced;
]=])
    dattavani_replace_once("${source}" [=[
                // init new transcription with sot, language (opt) and task tokens
                prompt.insert(prompt.end(), prompt_init.begin(), prompt_init.end());
]=] [=[
                // init new transcription with sot, language (opt) and task tokens
                prompt.insert(prompt.end(), prompt_init.begin(), prompt_init.end());

                // dattavani: the prefix, at the call's first window only.
                state->tokens_forced.clear();
                if (seek == seek_start && params.prefix_n_tokens > 0) {
                    if (!params.no_timestamps) {
                        state->tokens_forced.push_back(whisper_token_beg(ctx));
                    }
                    state->tokens_forced.insert(state->tokens_forced.end(), params.prefix_tokens,
                                                params.prefix_tokens + params.prefix_n_tokens);
                }
]=])
    dattavani_replace_once("${source}" [=[
    // compute probs
    whisper_compute_probs(logits, n_logits, logprobs, probs);
]=] [=[
    // dattavani: at a step that has a forced token (the prefix), it is the only possible one.
    if (tokens_cur.size() < state.tokens_forced.size()) {
        const whisper_token forced = state.tokens_forced[tokens_cur.size()];
        std::fill(logits.begin(), logits.end(), -INFINITY);
        std::fill(logprobs.begin(), logprobs.end(), -INFINITY);
        logits[forced]   = 0.0f;
        logprobs[forced] = 0.0f;
    }

    // compute probs
    whisper_compute_probs(logits, n_logits, logprobs, probs);
]=])

    # A window decoded without timestamps (without_timestamps=True, whisper.cpp's no_timestamps)
    # began its segment at the "timestamp" of its first text token: its most likely timestamp,
    # which is no token at all when timestamps are suppressed (id 0), so jfk's one segment began
    # at -1007.26 s. As in openai-whisper, such a segment begins where its window does.
    dattavani_replace_once("${source}" [=[
                auto t0 = seek + 2*(tokens_cur.front().tid - whisper_token_beg(ctx));
]=] [=[
                // dattavani: the window's start when the text does not start with a timestamp.
                auto t0 = tokens_cur.front().id >= whisper_token_beg(ctx)
                        ? seek + 2*(tokens_cur.front().tid - whisper_token_beg(ctx)) : seek;
]=])
endfunction()
