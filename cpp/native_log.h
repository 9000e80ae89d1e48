// whisper.cpp and ggml log lines, routed to Python's `logging` (logger "dattavani.native").
//
// The log callback may run on any thread, including ggml's worker threads while another thread
// holds the GIL and waits for them, so it must never take the GIL itself: it only queues the line.
// Bound functions call flush_native_log() once they hold the GIL again.
#pragma once

namespace dattavani {

// Points whisper.cpp's and ggml's log callbacks at our queue. Call once at module import.
void install_native_log();

// Emits the queued lines through logging.getLogger("dattavani.native"). Needs the GIL.
void flush_native_log();

} // namespace dattavani
