// dattavani._core: the Python binding of the native core.
//
// Low level on purpose (as llama-cpp-python splits its binding from its API): plain objects and
// explicit options; policy (model names, devices, defaults, result dataclasses) lives in Python.
// Every call that may run long releases the GIL; every C++ error leaves as a dattavani.errors type.
#include "errors.h"
#include "ggml_file.h"
#include "mel.h"
#include "model.h"
#include "native_log.h"
#include "py_text.h"
#include "quantize.h"
#include "system_info.h"
#include "vad.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

namespace py = pybind11;
using namespace dattavani;

namespace {

// Flushes queued native log lines when it goes out of scope; declare it before any
// gil_scoped_release so that it runs with the GIL held again.
struct log_flush_guard {
    log_flush_guard() = default;
    log_flush_guard(const log_flush_guard &) = delete;
    log_flush_guard & operator=(const log_flush_guard &) = delete;
    ~log_flush_guard() {
        try {
            flush_native_log();
        } catch (...) {
            PyErr_Clear();  // logging must never replace the real outcome of the call
        }
    }
};

// A 1-D C-contiguous float32 view of `audio`, without copying it. Anything else is refused rather
// than converted: int16 PCM silently cast to float would be 32768 times too loud.
const float * audio_samples(const py::array & audio, size_t * n) {
    if (!audio.dtype().is(py::dtype::of<float>())) {
        throw options_error("audio must be a float32 array, got dtype " +
                            std::string(py::str(audio.dtype())));
    }
    if (audio.ndim() != 1) {
        throw options_error("audio must be a 1-D array of mono samples, got " +
                            std::to_string(audio.ndim()) + " dimensions");
    }
    if (!(audio.flags() & py::array::c_style)) {
        throw options_error("audio must be C-contiguous (use numpy.ascontiguousarray)");
    }
    *n = static_cast<size_t>(audio.shape(0));
    return static_cast<const float *>(audio.data());
}

transcribe_callbacks make_callbacks(const py::object & on_progress, const py::object & on_segment) {
    transcribe_callbacks callbacks;
    if (!on_progress.is_none()) {
        callbacks.on_progress = [on_progress](float fraction) {
            py::gil_scoped_acquire gil;
            on_progress(fraction);
        };
    }
    if (!on_segment.is_none()) {
        callbacks.on_segment = [on_segment](const decoded_segment & segment) {
            py::gil_scoped_acquire gil;
            on_segment(py::cast(segment));
        };
    }
    return callbacks;
}

void register_errors(py::module_ & m) {
    py::module_ errors = py::module_::import("dattavani.errors");
    // Leaked references: the translator may run until the interpreter is gone.
    static PyObject * model_load = py::object(errors.attr("ModelLoadError")).release().ptr();
    static PyObject * options = py::object(errors.attr("OptionsError")).release().ptr();
    static PyObject * conversion = py::object(errors.attr("ConversionError")).release().ptr();
    static PyObject * transcription = py::object(errors.attr("TranscriptionError")).release().ptr();
    static PyObject * cancelled = py::object(errors.attr("Cancelled")).release().ptr();
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) {
                std::rethrow_exception(p);
            }
        } catch (const model_load_error & e) {
            PyErr_SetString(model_load, e.what());
        } catch (const options_error & e) {
            PyErr_SetString(options, e.what());
        } catch (const conversion_error & e) {
            PyErr_SetString(conversion, e.what());
        } catch (const transcription_error & e) {
            PyErr_SetString(transcription, e.what());
        } catch (const cancelled_error & e) {
            PyErr_SetString(cancelled, e.what());
        }
    });
    m.attr("__errors__") = errors;
}

// A model file's fields as Python sees them, written once: Model's properties and the keys of
// inspect_model()'s dict. weights_bytes is what the weights take in memory (the tensor sizes).
template <typename F>
void for_each_model_info_field(F && visit) {
    visit("n_vocab", &ggml_file_info::n_vocab);
    visit("n_audio_ctx", &ggml_file_info::n_audio_ctx);
    visit("n_audio_state", &ggml_file_info::n_audio_state);
    visit("n_audio_head", &ggml_file_info::n_audio_head);
    visit("n_audio_layer", &ggml_file_info::n_audio_layer);
    visit("n_text_ctx", &ggml_file_info::n_text_ctx);
    visit("n_text_state", &ggml_file_info::n_text_state);
    visit("n_text_head", &ggml_file_info::n_text_head);
    visit("n_text_layer", &ggml_file_info::n_text_layer);
    visit("n_mels", &ggml_file_info::n_mels);
    visit("ftype", &ggml_file_info::ftype);
    visit("weights_bytes", &ggml_file_info::tensor_bytes);
    visit("file_bytes", &ggml_file_info::file_bytes);
}

} // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "Native core of dattavani: whisper.cpp models, transcription and log-mel spectrograms.";
    install_native_log();
    register_errors(m);
    m.attr("WHISPER_CPP_VERSION") = DATTAVANI_WHISPER_CPP_VERSION;
    m.attr("GPU_BACKEND") = DATTAVANI_GPU;
    m.attr("SAMPLE_RATE") = WHISPER_SAMPLE_RATE;

    py::class_<cancel_token, std::shared_ptr<cancel_token>>(m, "CancelToken",
        "Stops a running transcription from another thread.")
        .def(py::init<>())
        .def("cancel", &cancel_token::cancel)
        .def_property_readonly("cancelled", &cancel_token::cancelled);

    py::class_<full_params> opts(m, "FullParams",
        "Per-call decoding options (whisper_full_params without the callbacks).");
    opts.def(py::init<>())
        .def_readwrite("language", &full_params::language)
        .def_readwrite("translate", &full_params::translate)
        .def_readwrite("n_threads", &full_params::n_threads)
        .def_readwrite("best_of", &full_params::best_of)
        .def_readwrite("beam_size", &full_params::beam_size)
        .def_readwrite("patience", &full_params::patience)
        .def_readwrite("temperature", &full_params::temperature)
        .def_readwrite("temperature_inc", &full_params::temperature_inc)
        .def_readwrite("entropy_thold", &full_params::entropy_thold)
        .def_readwrite("logprob_thold", &full_params::logprob_thold)
        .def_readwrite("no_speech_thold", &full_params::no_speech_thold)
        .def_readwrite("length_penalty", &full_params::length_penalty)
        .def_readwrite("max_initial_ts", &full_params::max_initial_ts)
        .def_readwrite("initial_prompt", &full_params::initial_prompt)
        .def_readwrite("prefix", &full_params::prefix)
        .def_readwrite("carry_initial_prompt", &full_params::carry_initial_prompt)
        .def_readwrite("condition_on_previous_text", &full_params::condition_on_previous_text)
        .def_readwrite("suppress_blank", &full_params::suppress_blank)
        .def_readwrite("suppress_non_speech_tokens", &full_params::suppress_non_speech_tokens)
        .def_readwrite("suppress_tokens", &full_params::suppress_tokens)
        .def_readwrite("repetition_penalty", &full_params::repetition_penalty)
        .def_readwrite("no_repeat_ngram_size", &full_params::no_repeat_ngram_size)
        .def_readwrite("suppress_regex", &full_params::suppress_regex)
        .def_readwrite("token_timestamps", &full_params::token_timestamps)
        .def_readwrite("no_timestamps", &full_params::no_timestamps)
        .def_readwrite("single_segment", &full_params::single_segment)
        .def_readwrite("max_len", &full_params::max_len)
        .def_readwrite("split_on_word", &full_params::split_on_word)
        .def_readwrite("max_tokens", &full_params::max_tokens)
        .def_readwrite("offset_ms", &full_params::offset_ms)
        .def_readwrite("duration_ms", &full_params::duration_ms)
        .def_readwrite("audio_ctx", &full_params::audio_ctx)
        .def_readwrite("n_max_text_ctx", &full_params::n_max_text_ctx)
        .def("fallback_temperatures", &fallback_temperatures,
             "The temperatures whisper.cpp decodes a window at, in order (its fallback schedule).")
        .def("validate", &validate_full_params,
             "OptionsError unless whisper.cpp runs safely with these parameters "
             "(dattavani.TranscribeOptions checks the rest).");

    py::class_<decoded_token>(m, "DecodedToken")
        .def_readonly("id", &decoded_token::id)
        .def_property_readonly("text", [](const decoded_token & t) { return py::bytes(t.text); },
                               "The token's raw bytes (a character may span two tokens).")
        .def_readonly("probability", &decoded_token::p)
        .def_readonly("logprob", &decoded_token::plog)
        .def_readonly("start", &decoded_token::start)
        .def_readonly("end", &decoded_token::end)
        .def_readonly("dtw_time", &decoded_token::dtw_time);

    py::class_<decoded_segment>(m, "DecodedSegment")
        .def_readonly("start", &decoded_segment::start)
        .def_readonly("end", &decoded_segment::end)
        .def_property_readonly("text", [](const decoded_segment & s) { return decode_utf8(s.text); })
        .def_readonly("avg_logprob", &decoded_segment::avg_logprob)
        .def_readonly("no_speech_prob", &decoded_segment::no_speech_prob)
        .def_readonly("tokens", &decoded_segment::tokens);

    py::class_<full_result>(m, "FullResult")
        .def_readonly("segments", &full_result::segments)
        .def_readonly("language", &full_result::language)
        .def_readonly("language_probability", &full_result::language_probability)
        .def_readonly("language_probs", &full_result::language_probs);

    py::class_<model, std::shared_ptr<model>> model_class(m, "Model",
        "A whisper GGML model loaded once; transcribe() may be called from many threads at once.");
    for_each_model_info_field([&](const char * name, auto field) {
        model_class.def_property_readonly(name, [field](const model & s) { return s.info().*field; });
    });
    model_class
        .def(py::init([](const std::string & path, bool use_gpu, int gpu_device, bool flash_attn, bool dtw,
                         int max_states) {
                 log_flush_guard flush;
                 const model_params params{use_gpu, gpu_device, flash_attn, dtw, max_states};
                 py::gil_scoped_release release;
                 return std::make_shared<model>(path, params);
             }),
             // Keyword-only and without defaults: LoadParameters.load_model owns them.
             py::arg("path"), py::kw_only(), py::arg("use_gpu"), py::arg("gpu_device"), py::arg("flash_attn"),
             py::arg("dtw"), py::arg("max_states"))
        .def_property_readonly("path", &model::path)
        .def_property_readonly("is_multilingual", &model::is_multilingual)
        .def_property_readonly("type", &model::type_name)
        .def_property_readonly("use_gpu", [](const model & s) { return s.params().use_gpu; })
        .def_property_readonly("gpu_device", [](const model & s) { return s.params().gpu_device; })
        .def_property_readonly("flash_attn", [](const model & s) { return s.params().flash_attn; })
        .def_property_readonly("dtw", [](const model & s) { return s.params().dtw; })
        .def_property_readonly("max_states", [](const model & s) { return s.params().max_states; })
        .def_property_readonly("states_created", &model::states_created,
                               "whisper_states allocated so far (at most max_states).")
        .def("transcribe",
             [](model & self, const py::array & audio, const full_params & params,
                const py::object & on_progress, const py::object & on_segment,
                std::shared_ptr<cancel_token> cancel) {
                 log_flush_guard flush;
                 size_t n = 0;
                 const float * samples = audio_samples(audio, &n);
                 const transcribe_callbacks callbacks = make_callbacks(on_progress, on_segment);
                 py::gil_scoped_release release;
                 return self.transcribe(samples, n, params, callbacks, cancel.get());
             },
             py::arg("audio"), py::arg("params"), py::arg("on_progress") = py::none(),
             py::arg("on_segment") = py::none(), py::arg("cancel") = nullptr)
        .def("detect_language",
             [](model & self, const py::array & audio, int n_threads, int offset_ms,
                std::shared_ptr<cancel_token> cancel) {
                 log_flush_guard flush;
                 size_t n = 0;
                 const float * samples = audio_samples(audio, &n);
                 py::gil_scoped_release release;
                 return self.detect_language(samples, n, n_threads, offset_ms, cancel.get());
             },
             py::arg("audio"), py::arg("n_threads") = 4, py::arg("offset_ms") = 0,
             py::arg("cancel") = nullptr)
        .def("tokenize", &model::tokenize, py::arg("text"));

    py::class_<vad_model, std::shared_ptr<vad_model>>(m, "VadModel",
        "Silero voice activity detection (whisper.cpp's ggml port).")
        .def(py::init([](const std::string & path, int n_threads, bool use_gpu) {
                 log_flush_guard flush;
                 py::gil_scoped_release release;
                 return std::make_shared<vad_model>(path, n_threads, use_gpu);
             }),
             py::arg("path"), py::arg("n_threads") = 1, py::arg("use_gpu") = false)
        .def("speech",
             [](vad_model & self, const py::array & audio, float threshold, int min_speech_duration_ms,
                int min_silence_duration_ms, float max_speech_duration_s, int speech_pad_ms) {
                 log_flush_guard flush;
                 size_t n = 0;
                 const float * samples = audio_samples(audio, &n);
                 vad_options options;
                 options.threshold = threshold;
                 options.min_speech_duration_ms = min_speech_duration_ms;
                 options.min_silence_duration_ms = min_silence_duration_ms;
                 options.max_speech_duration_s = max_speech_duration_s;
                 options.speech_pad_ms = speech_pad_ms;
                 py::gil_scoped_release release;
                 return self.speech(samples, n, options);
             },
             // The defaults are vad_options' own (vad.h), written once.
             py::arg("audio"), py::arg("threshold") = vad_options{}.threshold,
             py::arg("min_speech_duration_ms") = vad_options{}.min_speech_duration_ms,
             py::arg("min_silence_duration_ms") = vad_options{}.min_silence_duration_ms,
             py::arg("max_speech_duration_s") = vad_options{}.max_speech_duration_s,
             py::arg("speech_pad_ms") = vad_options{}.speech_pad_ms,
             "Speech spans (start, end) in seconds of 16 kHz mono float32 audio.");

    m.def("log_mel_spectrogram",
          [](const py::array & audio, const py::array_t<float, py::array::c_style | py::array::forcecast> & filters,
             size_t padding, int n_threads) {
              size_t n = 0;
              const float * samples = audio_samples(audio, &n);
              if (filters.ndim() != 2 || filters.shape(1) != k_n_freq) {
                  throw options_error("filters must have shape (n_mels, 201)");
              }
              const int n_mels = static_cast<int>(filters.shape(0));
              size_t n_frames = 0;
              std::vector<float> mel;
              {
                  py::gil_scoped_release release;
                  mel = log_mel_spectrogram(samples, n, padding, filters.data(), n_mels, n_threads, &n_frames);
              }
              py::array_t<float> out({static_cast<py::ssize_t>(n_mels), static_cast<py::ssize_t>(n_frames)});
              std::copy(mel.begin(), mel.end(), out.mutable_data());
              return out;
          },
          py::arg("audio"), py::arg("filters"), py::arg("padding") = 0, py::arg("n_threads") = 1,
          "Whisper's log-mel spectrogram of 16 kHz float32 audio, shape (n_mels, n_samples // 160).");

    m.def("quantize_model",
          [](const std::string & src_path, const std::string & dst_path, const std::string & type) {
              py::gil_scoped_release release;
              quantize_model(src_path, dst_path, type);
          },
          py::arg("src_path"), py::arg("dst_path"), py::arg("type"),
          "Write the GGML model at src_path to dst_path with its weights as type (q8_0, q5_0, q5_1, "
          "q4_0, or f16 from f32).");

    m.def("inspect_model",
          [](const std::string & path) {
              ggml_file_info info;
              {
                  py::gil_scoped_release release;
                  info = inspect_ggml_file(path);
              }
              py::dict d;
              for_each_model_info_field([&](const char * name, auto field) { d[name] = info.*field; });
              d["n_tensors"] = info.n_tensors;
              return d;
          },
          py::arg("path"),
          "A GGML model file's hyper-parameters and sizes, read and checked without loading it.");
    m.def("compiled_backends", &compiled_backends);
    m.def("list_devices", []() {
        py::list out;
        for (const auto & d : list_devices()) {
            py::dict info;
            info["name"] = d.name;
            info["description"] = d.description;
            info["type"] = d.type;
            info["backend"] = d.backend;
            info["memory_free"] = d.memory_free;
            info["memory_total"] = d.memory_total;
            out.append(info);
        }
        flush_native_log();
        return out;
    });
    m.def("system_info", &whisper_system_info, "whisper.cpp's system-info line (CPU features in use).");
    m.def("languages", []() {
        py::list out;
        for (int i = 0; i <= whisper_lang_max_id(); ++i) {
            out.append(py::make_tuple(whisper_lang_str(i), whisper_lang_str_full(i)));
        }
        return out;
    }, "(code, name) of every language whisper knows, in token order.");
    m.def("flush_log", &flush_native_log, "Emit queued whisper.cpp/ggml log lines now.");
}
