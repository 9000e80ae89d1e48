#include "mel.h"

#include "errors.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <thread>

namespace dattavani {
namespace {

using cplx = std::complex<double>;

struct fft_tables {
    std::vector<cplx> twiddle;  // exp(-2 pi i m / 400)
    std::vector<double> window; // periodic Hann, as torch.hann_window(400)

    fft_tables() : twiddle(k_n_fft), window(k_n_fft) {
        for (int m = 0; m < k_n_fft; ++m) {
            const double angle = 2.0 * M_PI * m / k_n_fft;
            twiddle[m] = cplx(std::cos(angle), -std::sin(angle));
            window[m] = 0.5 * (1.0 - std::cos(angle));
        }
    }
};

const fft_tables & tables() {
    static const fft_tables t;
    return t;
}

// DFT of n points read with `stride` from `in` into `out`. 400 = 2^4 * 25: radix-2 splits down to
// 25 points, which are summed directly. No allocation: this runs once per 10 ms frame.
void fft(const cplx * in, size_t stride, cplx * out, int n, int tw_step, const cplx * tw) {
    if (n % 2 == 1) {
        for (int k = 0; k < n; ++k) {
            cplx sum = 0.0;
            for (int j = 0; j < n; ++j) {
                sum += in[j * stride] * tw[((j * k) % n) * tw_step];
            }
            out[k] = sum;
        }
        return;
    }
    const int half = n / 2;
    fft(in, stride * 2, out, half, tw_step * 2, tw);
    fft(in + stride, stride * 2, out + half, half, tw_step * 2, tw);
    for (int k = 0; k < half; ++k) {
        const cplx even = out[k];
        const cplx odd = out[k + half] * tw[k * tw_step];
        out[k] = even + odd;
        out[k + half] = even - odd;
    }
}

// Sample i of the padded signal: audio, then `padding` zeros, mirrored (without repeating the edge
// sample) by 200 on both sides, as torch.stft(center=True, pad_mode="reflect") does.
struct padded_signal {
    const float * samples;
    size_t n_samples;
    long long length;  // audio + zero padding

    double at(long long i) const {
        if (i < 0) {
            i = -i;
        } else if (i >= length) {
            i = 2 * (length - 1) - i;
        }
        return i < static_cast<long long>(n_samples) ? samples[i] : 0.0;
    }
};

void mel_frames(const padded_signal & signal, const float * filters, int n_mels, size_t n_frames,
                size_t first, size_t last, float * out) {
    const fft_tables & t = tables();
    std::vector<cplx> frame(k_n_fft), spectrum(k_n_fft);
    std::vector<double> power(k_n_freq);
    for (size_t f = first; f < last; ++f) {
        const long long start = static_cast<long long>(f) * k_hop_length - k_n_fft / 2;
        for (int i = 0; i < k_n_fft; ++i) {
            frame[i] = signal.at(start + i) * t.window[i];
        }
        fft(frame.data(), 1, spectrum.data(), k_n_fft, 1, t.twiddle.data());
        for (int k = 0; k < k_n_freq; ++k) {
            power[k] = std::norm(spectrum[k]);
        }
        for (int m = 0; m < n_mels; ++m) {
            const float * row = filters + static_cast<size_t>(m) * k_n_freq;
            double sum = 0.0;
            for (int k = 0; k < k_n_freq; ++k) {
                sum += row[k] * power[k];
            }
            out[static_cast<size_t>(m) * n_frames + f] = static_cast<float>(std::log10(std::max(sum, 1e-10)));
        }
    }
}

} // namespace

std::vector<float> log_mel_spectrogram(const float * samples, size_t n_samples, size_t padding,
                                       const float * filters, int n_mels, int n_threads,
                                       size_t * n_frames_out) {
    const size_t length = n_samples + padding;
    if (length <= static_cast<size_t>(k_n_fft / 2)) {
        throw options_error("the audio is too short for a spectrogram (" + std::to_string(length) +
                            " samples; at least " + std::to_string(k_n_fft / 2 + 1) + " needed)");
    }
    if (n_mels < 1 || n_threads < 1) {
        throw options_error("n_mels and threads must be >= 1");
    }
    const size_t n_frames = length / k_hop_length;  // torch.stft gives one more; whisper drops it
    std::vector<float> mel(static_cast<size_t>(n_mels) * n_frames);
    const padded_signal signal{samples, n_samples, static_cast<long long>(length)};

    const size_t n_workers = std::min<size_t>(static_cast<size_t>(n_threads), std::max<size_t>(n_frames / 64, 1));
    std::vector<std::thread> workers;
    const size_t per_worker = (n_frames + n_workers - 1) / n_workers;
    for (size_t w = 1; w < n_workers; ++w) {
        const size_t first = w * per_worker;
        const size_t last = std::min(n_frames, first + per_worker);
        if (first < last) {
            workers.emplace_back(mel_frames, std::cref(signal), filters, n_mels, n_frames, first, last, mel.data());
        }
    }
    mel_frames(signal, filters, n_mels, n_frames, 0, std::min(n_frames, per_worker), mel.data());
    for (auto & w : workers) {
        w.join();
    }

    const float max_value = *std::max_element(mel.begin(), mel.end());
    for (float & v : mel) {
        v = (std::max(v, max_value - 8.0f) + 4.0f) / 4.0f;
    }
    *n_frames_out = n_frames;
    return mel;
}

} // namespace dattavani
