#include "native_log.h"

#include "py_text.h"

#include "ggml.h"
#include "whisper.h"

#include <pybind11/pybind11.h>

#include <deque>
#include <mutex>
#include <string>
#include <utility>

namespace py = pybind11;

namespace dattavani {
namespace {

// A runaway producer must not grow memory without bound between flushes.
constexpr size_t k_max_queued_lines = 4096;

struct log_queue {
    std::mutex mutex;
    std::deque<std::pair<int, std::string>> lines;  // (Python logging level, text)
    std::string partial;                             // text of a line not yet ended by '\n'
    int partial_level = 20;
    size_t dropped = 0;
};

log_queue & queue() {
    // Leaked on purpose: ggml may log from static destructors after module teardown.
    static auto * q = new log_queue();
    return *q;
}

int python_level(ggml_log_level level, int previous) {
    switch (level) {
        case GGML_LOG_LEVEL_DEBUG: return 10;
        // whisper.cpp reports every hyper-parameter and buffer at INFO: detail, not news.
        case GGML_LOG_LEVEL_INFO: return 10;
        case GGML_LOG_LEVEL_WARN: return 30;
        case GGML_LOG_LEVEL_ERROR: return 40;
        case GGML_LOG_LEVEL_CONT: return previous;  // continues the previous line
        default: return 20;
    }
}

void on_log(ggml_log_level level, const char * text, void * /*user_data*/) {
    if (text == nullptr) {
        return;
    }
    auto & q = queue();
    std::lock_guard<std::mutex> lock(q.mutex);
    if (q.partial.empty()) {
        q.partial_level = python_level(level, q.partial_level);
    }
    for (const char * p = text; *p != '\0'; ++p) {
        if (*p != '\n') {
            q.partial.push_back(*p);
            continue;
        }
        if (q.lines.size() < k_max_queued_lines) {
            q.lines.emplace_back(q.partial_level, std::move(q.partial));
        } else {
            q.dropped += 1;
        }
        q.partial.clear();
    }
}

} // namespace

void install_native_log() {
    whisper_log_set(on_log, nullptr);
    ggml_log_set(on_log, nullptr);
}

void flush_native_log() {
    std::deque<std::pair<int, std::string>> lines;
    size_t dropped = 0;
    {
        auto & q = queue();
        std::lock_guard<std::mutex> lock(q.mutex);
        lines.swap(q.lines);
        std::swap(dropped, q.dropped);
    }
    if (lines.empty() && dropped == 0) {
        return;
    }
    py::object logger = py::module_::import("logging").attr("getLogger")("dattavani.native");
    for (const auto & [level, text] : lines) {
        if (!text.empty()) {
            logger.attr("log")(level, "%s", decode_utf8(text));
        }
    }
    if (dropped > 0) {
        logger.attr("warning")("%d native log lines were dropped (queue full)", dropped);
    }
}

} // namespace dattavani
