#include "ggml_file.h"

#include "errors.h"

#include "ggml.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <unordered_map>

namespace dattavani {
namespace {

constexpr uint32_t k_ggml_magic = 0x67676d6c;  // "ggml", as whisper.cpp writes it
constexpr int32_t k_n_fft_bins = 201;           // 1 + 400/2: whisper's STFT size

struct file_closer {
    void operator()(FILE * f) const { std::fclose(f); }
};

class reader {
public:
    reader(const std::string & path, uint64_t size) : path_(path), size_(size) {
        file_.reset(std::fopen(path.c_str(), "rb"));
        if (!file_) {
            fail(std::string("cannot open the file for reading: ") + std::strerror(errno));
        }
    }

    [[noreturn]] void fail(const std::string & reason) const {
        throw model_load_error("cannot load model '" + path_ + "': " + reason);
    }

    uint64_t offset() const { return offset_; }
    uint64_t remaining() const { return size_ - offset_; }

    int32_t i32(const char * what) {
        int32_t v = 0;
        bytes(&v, sizeof(v), what);
        return v;
    }

    void bytes(void * out, size_t n, const char * what) {
        if (n > remaining() || std::fread(out, 1, n, file_.get()) != n) {
            fail(std::string("file is truncated (ends inside ") + what + " at byte " +
                 std::to_string(offset_) + " of " + std::to_string(size_) + ")");
        }
        offset_ += n;
    }

    void skip(uint64_t n, const char * what) {
        if (n > remaining()) {
            fail(std::string("file is truncated (") + what + " needs " + std::to_string(n) +
                 " bytes at byte " + std::to_string(offset_) + ", only " +
                 std::to_string(remaining()) + " remain)");
        }
        if (std::fseek(file_.get(), static_cast<long>(offset_ + n), SEEK_SET) != 0) {
            fail("seek failed");
        }
        offset_ += n;
    }

private:
    std::string path_;
    uint64_t size_;
    uint64_t offset_ = 0;
    std::unique_ptr<FILE, file_closer> file_;
};

void check_range(const reader & r, const char * name, int32_t v, int32_t lo, int32_t hi) {
    if (v < lo || v > hi) {
        r.fail(std::string("hyper-parameter ") + name + " = " + std::to_string(v) +
               " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
}

// The weight type of a file's ftype, or GGML_TYPE_COUNT for one whisper.cpp cannot load:
// ggml_ftype_to_ggml_type aborts the process on an ftype it does not know, so only those that
// whisper.cpp's quantizer writes get that far.
ggml_type weight_type(int32_t ftype) {
    switch (ftype) {
        case GGML_FTYPE_ALL_F32:
        case GGML_FTYPE_MOSTLY_F16:
        case GGML_FTYPE_MOSTLY_Q4_0:
        case GGML_FTYPE_MOSTLY_Q4_1:
        case GGML_FTYPE_MOSTLY_Q5_0:
        case GGML_FTYPE_MOSTLY_Q5_1:
        case GGML_FTYPE_MOSTLY_Q8_0:
        case GGML_FTYPE_MOSTLY_Q2_K:
        case GGML_FTYPE_MOSTLY_Q3_K:
        case GGML_FTYPE_MOSTLY_Q4_K:
        case GGML_FTYPE_MOSTLY_Q5_K:
        case GGML_FTYPE_MOSTLY_Q6_K:
            return ggml_ftype_to_ggml_type(static_cast<ggml_ftype>(ftype));
        default:
            return GGML_TYPE_COUNT;
    }
}

struct expected_tensor {
    int64_t ne[4];
    ggml_type type;
    bool seen = false;
};

using tensor_table = std::unordered_map<std::string, expected_tensor>;

// The tensors whisper_model_load allocates for these hyper-parameters, with their shapes and types:
// 7 encoder-wide + 15 per encoder layer, 4 decoder-wide + 24 per decoder layer. whisper.cpp reads
// each tensor's bytes into its own allocation without comparing the file's type to it, and leaves a
// tensor named twice (another one then never loaded) uninitialised: both load and give garbage.
tensor_table expected_tensors(const ggml_file_info & info, ggml_type wtype) {
    const ggml_type f32 = GGML_TYPE_F32;
    const ggml_type conv = wtype == GGML_TYPE_F32 ? GGML_TYPE_F32 : GGML_TYPE_F16;
    tensor_table table;
    auto add = [&](const std::string & name, ggml_type type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) {
        table[name] = expected_tensor{{ne0, ne1, ne2, 1}, type};
    };
    auto add_mlp = [&](const std::string & block, int64_t n) {
        add(block + "mlp_ln.weight", f32, n);
        add(block + "mlp_ln.bias", f32, n);
        add(block + "mlp.0.weight", wtype, n, 4 * n);
        add(block + "mlp.0.bias", f32, 4 * n);
        add(block + "mlp.2.weight", wtype, 4 * n, n);
        add(block + "mlp.2.bias", f32, n);
    };
    auto add_attention = [&](const std::string & attn, int64_t n) {
        add(attn + "_ln.weight", f32, n);
        add(attn + "_ln.bias", f32, n);
        add(attn + ".query.weight", wtype, n, n);
        add(attn + ".query.bias", f32, n);
        add(attn + ".key.weight", wtype, n, n);
        add(attn + ".value.weight", wtype, n, n);
        add(attn + ".value.bias", f32, n);
        add(attn + ".out.weight", wtype, n, n);
        add(attn + ".out.bias", f32, n);
    };
    const int64_t n_audio = info.n_audio_state;
    const int64_t n_text = info.n_text_state;
    add("encoder.positional_embedding", f32, n_audio, info.n_audio_ctx);
    add("encoder.conv1.weight", conv, 3, info.n_mels, n_audio);
    add("encoder.conv1.bias", f32, 1, n_audio);
    add("encoder.conv2.weight", conv, 3, n_audio, n_audio);
    add("encoder.conv2.bias", f32, 1, n_audio);
    add("encoder.ln_post.weight", f32, n_audio);
    add("encoder.ln_post.bias", f32, n_audio);
    for (int32_t i = 0; i < info.n_audio_layer; ++i) {
        const std::string block = "encoder.blocks." + std::to_string(i) + ".";
        add_mlp(block, n_audio);
        add_attention(block + "attn", n_audio);
    }
    add("decoder.positional_embedding", f32, n_text, info.n_text_ctx);
    add("decoder.token_embedding.weight", wtype, n_text, info.n_vocab);
    add("decoder.ln.weight", f32, n_text);
    add("decoder.ln.bias", f32, n_text);
    for (int32_t i = 0; i < info.n_text_layer; ++i) {
        const std::string block = "decoder.blocks." + std::to_string(i) + ".";
        add_mlp(block, n_text);
        add_attention(block + "attn", n_text);
        add_attention(block + "cross_attn", n_text);
    }
    return table;
}

std::string shape_text(const int64_t * ne) {
    std::string text = "[";
    for (int d = 0; d < 4; ++d) {
        text += (d ? ", " : "") + std::to_string(ne[d]);
    }
    return text + "]";
}

} // namespace

ggml_file_info inspect_ggml_file(const std::string & path, bool for_inference) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw model_load_error("cannot load model '" + path + "': no such file");
    }
    if (S_ISDIR(st.st_mode)) {
        throw model_load_error("cannot load model '" + path + "': it is a directory, not a file");
    }
    if (!S_ISREG(st.st_mode)) {
        throw model_load_error("cannot load model '" + path + "': not a regular file");
    }
    ggml_file_info info;
    info.file_bytes = static_cast<uint64_t>(st.st_size);
    if (info.file_bytes == 0) {
        throw model_load_error("cannot load model '" + path + "': the file is empty");
    }

    reader r(path, info.file_bytes);
    uint32_t magic = 0;
    r.bytes(&magic, sizeof(magic), "the magic number");
    if (magic != k_ggml_magic) {
        char hex[16];
        std::snprintf(hex, sizeof(hex), "0x%08x", magic);
        r.fail(std::string("not a whisper GGML file (magic ") + hex + ", expected 0x67676d6c)");
    }

    info.n_vocab = r.i32("the hyper-parameters");
    info.n_audio_ctx = r.i32("the hyper-parameters");
    info.n_audio_state = r.i32("the hyper-parameters");
    info.n_audio_head = r.i32("the hyper-parameters");
    info.n_audio_layer = r.i32("the hyper-parameters");
    info.n_text_ctx = r.i32("the hyper-parameters");
    info.n_text_state = r.i32("the hyper-parameters");
    info.n_text_head = r.i32("the hyper-parameters");
    info.n_text_layer = r.i32("the hyper-parameters");
    info.n_mels = r.i32("the hyper-parameters");
    info.ftype = r.i32("the hyper-parameters");

    // Whisper's special tokens sit at fixed offsets from the end of its vocabularies (51864 for
    // English-only, 51865 multilingual, 51866 for large-v3): whisper.cpp indexes them blindly.
    check_range(r, "n_vocab", info.n_vocab, 51864, 51866);
    check_range(r, "n_audio_ctx", info.n_audio_ctx, 1, 1500);
    check_range(r, "n_audio_state", info.n_audio_state, 1, 8192);
    check_range(r, "n_audio_head", info.n_audio_head, 1, 128);
    check_range(r, "n_audio_layer", info.n_audio_layer, 1, 128);
    // whisper.cpp's token batch holds n_text_ctx tokens and its prompts take up to n_text_ctx / 2
    // of history plus five control tokens: a smaller context writes past the batch
    // (heap-buffer-overflow in whisper_batch_prep_legacy, found by bench/fuzz_model.py).
    check_range(r, "n_text_ctx", info.n_text_ctx, 16, 448);
    check_range(r, "n_text_state", info.n_text_state, 1, 8192);
    check_range(r, "n_text_head", info.n_text_head, 1, 128);
    check_range(r, "n_text_layer", info.n_text_layer, 1, 128);
    if (info.n_mels != 80 && info.n_mels != 128) {
        r.fail("hyper-parameter n_mels = " + std::to_string(info.n_mels) + " (expected 80 or 128)");
    }
    if (info.n_audio_state != info.n_text_state) {
        r.fail("n_audio_state (" + std::to_string(info.n_audio_state) + ") != n_text_state (" +
               std::to_string(info.n_text_state) + ")");
    }
    if (info.n_audio_state % info.n_audio_head != 0 || info.n_text_state % info.n_text_head != 0) {
        r.fail("the state size is not a multiple of the head count");
    }
    const ggml_type wtype = weight_type(info.ftype % GGML_QNT_VERSION_FACTOR);
    if (wtype == GGML_TYPE_COUNT) {
        r.fail("unknown ftype " + std::to_string(info.ftype));
    }
    tensor_table expected = expected_tensors(info, wtype);

    const int32_t n_mel = r.i32("the mel filters");
    const int32_t n_fft = r.i32("the mel filters");
    if (n_mel != info.n_mels || n_fft != k_n_fft_bins) {
        r.fail("mel filter bank is " + std::to_string(n_mel) + "x" + std::to_string(n_fft) +
               ", expected " + std::to_string(info.n_mels) + "x" + std::to_string(k_n_fft_bins));
    }
    r.skip(static_cast<uint64_t>(n_mel) * n_fft * sizeof(float), "the mel filters");

    const int32_t n_vocab_file = r.i32("the vocabulary");
    if (n_vocab_file < 0 || n_vocab_file > info.n_vocab) {
        r.fail("vocabulary holds " + std::to_string(n_vocab_file) + " tokens, n_vocab is " +
               std::to_string(info.n_vocab));
    }
    // whisper_full looks the token " " up by its text (to suppress a blank start) and throws
    // std::out_of_range from the middle of decoding if the vocabulary lacks it.
    bool has_space = false;
    for (int32_t i = 0; i < n_vocab_file; ++i) {
        const int32_t len = r.i32("the vocabulary");
        if (len < 0 || len > 1024) {
            r.fail("vocabulary token " + std::to_string(i) + " has length " + std::to_string(len));
        }
        if (len == 1) {
            char text = 0;
            r.bytes(&text, 1, "the vocabulary");
            has_space = has_space || text == ' ';
        } else {
            r.skip(static_cast<uint64_t>(len), "the vocabulary");
        }
    }
    if (!has_space) {
        r.fail("the vocabulary (" + std::to_string(n_vocab_file) + " tokens) has no \" \" token, "
               "which whisper.cpp needs");
    }

    // whisper.cpp reads three int32 and stops at end of file: fewer bytes left after the last tensor
    // would be read as garbage. Before the last tensor, the reads below say where the file was cut.
    while (r.remaining() > 0) {
        if (r.remaining() < 3 * sizeof(int32_t) && static_cast<size_t>(info.n_tensors) == expected.size()) {
            r.fail(std::to_string(r.remaining()) + " stray bytes after the last tensor");
        }
        const int32_t n_dims = r.i32("a tensor header");
        const int32_t name_len = r.i32("a tensor header");
        const int32_t ttype = r.i32("a tensor header");
        const std::string where = "tensor #" + std::to_string(info.n_tensors);
        if (n_dims < 1 || n_dims > 4) {
            r.fail(where + " has " + std::to_string(n_dims) + " dimensions");
        }
        if (name_len < 1 || name_len > 256) {
            r.fail(where + " has a name of length " + std::to_string(name_len));
        }
        if (ttype < 0 || ttype >= GGML_TYPE_COUNT || ggml_type_size(static_cast<ggml_type>(ttype)) == 0 ||
            ggml_blck_size(static_cast<ggml_type>(ttype)) <= 0) {
            r.fail(where + " has unknown type " + std::to_string(ttype));
        }
        int64_t ne[4] = {1, 1, 1, 1};
        for (int32_t d = 0; d < n_dims; ++d) {
            ne[d] = r.i32("a tensor header");
            if (ne[d] < 1 || ne[d] > (1 << 20)) {
                r.fail(where + " has dimension " + std::to_string(d) + " = " + std::to_string(ne[d]));
            }
        }
        std::string name(static_cast<size_t>(name_len), '\0');
        r.bytes(name.data(), name.size(), "a tensor name");
        const auto type = static_cast<ggml_type>(ttype);
        const auto want = expected.find(name);
        if (want == expected.end()) {
            r.fail(where + " is named '" + name + "', which is not a tensor of a whisper model with "
                   "these hyper-parameters");
        }
        if (want->second.seen) {
            r.fail("tensor '" + name + "' appears twice");
        }
        want->second.seen = true;
        if (!std::equal(std::begin(ne), std::end(ne), std::begin(want->second.ne))) {
            r.fail("tensor '" + name + "' has shape " + shape_text(ne) + ", expected " +
                   shape_text(want->second.ne) + " for these hyper-parameters");
        }
        if (type != want->second.type) {
            r.fail("tensor '" + name + "' is stored as " + ggml_type_name(type) + ", expected " +
                   ggml_type_name(want->second.type) + " for ftype " + std::to_string(info.ftype));
        }
        if (ne[0] % ggml_blck_size(type) != 0) {
            r.fail("tensor '" + name + "' row of " + std::to_string(ne[0]) +
                   " elements is not a multiple of its block size");
        }
        const uint64_t n_bytes = ggml_row_size(type, ne[0]) * static_cast<uint64_t>(ne[1] * ne[2] * ne[3]);
        r.skip(n_bytes, ("the data of tensor '" + name + "'").c_str());
        // whisper.cpp 1.8.5's conv_1d runs im2col in F16 and asserts on F32 kernels: an all-F32
        // file would abort the interpreter at the first transcription.
        if (for_inference && name == "encoder.conv1.weight" && type == GGML_TYPE_F32) {
            r.fail("its convolution weights are F32, which whisper.cpp 1.8.5 cannot run (it aborts "
                   "in conv_1d); convert to f16 or quantize instead");
        }
        info.tensor_bytes += n_bytes;
        info.n_tensors += 1;
    }

    for (const auto & [name, tensor] : expected) {
        if (!tensor.seen) {
            r.fail("holds " + std::to_string(info.n_tensors) + " tensors, a whisper model of these "
                   "layers has " + std::to_string(expected.size()) + " (tensor '" + name + "' is missing)");
        }
    }
    return info;
}

} // namespace dattavani
