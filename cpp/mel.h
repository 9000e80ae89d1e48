// Whisper's log-mel spectrogram, computed natively with openai-whisper's numerics: periodic Hann
// window of 400, hop 160, centred frames with reflect padding, power spectrum, mel filter bank,
// log10 clamped to 8 below the maximum, scaled by (x + 4) / 4, last frame dropped.
#pragma once

#include <cstddef>
#include <vector>

namespace dattavani {

constexpr int k_n_fft = 400;
constexpr int k_hop_length = 160;
constexpr int k_n_freq = k_n_fft / 2 + 1;

// `filters` is n_mels x 201, row-major. `padding` zero samples are appended to the audio first.
// Returns n_mels x n_frames, row-major, with n_frames = (n_samples + padding) / 160.
std::vector<float> log_mel_spectrogram(const float * samples, size_t n_samples, size_t padding,
                                       const float * filters, int n_mels, int n_threads,
                                       size_t * n_frames_out);

} // namespace dattavani
