#include "quantize.h"

#include "errors.h"
#include "ggml_file.h"

#include "ggml.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#ifdef _WIN32
#include <io.h>
#else
#include <unistd.h>
#endif

namespace dattavani {
namespace {

namespace fs = std::filesystem;

struct target_format {
    const char * name;
    ggml_ftype ftype;
};

constexpr target_format k_targets[] = {
    {"q8_0", GGML_FTYPE_MOSTLY_Q8_0},
    {"q5_0", GGML_FTYPE_MOSTLY_Q5_0},
    {"q5_1", GGML_FTYPE_MOSTLY_Q5_1},
    {"q4_0", GGML_FTYPE_MOSTLY_Q4_0},
    {"f16", GGML_FTYPE_MOSTLY_F16},
};

// Matrices whisper.cpp allocates as F32 whatever the model's type (they are added to activations,
// not multiplied), so they must keep their type; the same list as whisper.cpp's quantizer skips.
constexpr const char * k_kept_matrices[] = {
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
};

// Elements converted per step: a few MB of buffers, whatever the size of the tensor.
constexpr int64_t k_step_elements = int64_t{1} << 20;

struct file_closer {
    void operator()(FILE * f) const { std::fclose(f); }
};
using file_ptr = std::unique_ptr<FILE, file_closer>;

const target_format & find_target(const std::string & type) {
    std::string known;
    for (const auto & target : k_targets) {
        if (type == target.name) {
            return target;
        }
        known += known.empty() ? "" : ", ";
        known += target.name;
    }
    throw options_error("unknown quantization type '" + type + "'; expected one of " + known);
}

// The type tensor `name` gets in a model whose weight matrices are `wtype`, mirroring the tensor
// types whisper_model_load allocates: weight matrices in wtype, conv kernels in F16 (whisper.cpp's
// "vtype" for any wtype but F32), everything else as it was (F32 in f16 and f32 files alike).
ggml_type target_type(const std::string & name, int32_t n_dims, ggml_type src, ggml_type wtype) {
    const bool kept = std::any_of(std::begin(k_kept_matrices), std::end(k_kept_matrices),
                                  [&](const char * kept_name) { return name == kept_name; });
    if (n_dims == 2 && !kept) {
        return wtype;
    }
    if (n_dims == 3) {
        return GGML_TYPE_F16;
    }
    return src;
}

class input_file {
public:
    explicit input_file(const std::string & path) : path_(path), file_(std::fopen(path.c_str(), "rb")) {
        if (!file_) {
            fail(std::string("cannot open the file for reading: ") + std::strerror(errno));
        }
    }

    [[noreturn]] void fail(const std::string & reason) const {
        throw model_load_error("cannot quantize model '" + path_ + "': " + reason);
    }

    void read(void * out, size_t n) {
        // inspect_ggml_file checked the layout already: a short read means the file changed since.
        if (std::fread(out, 1, n, file_.get()) != n) {
            fail("the file ended early (was it changed while being quantized?)");
        }
    }

    int32_t i32() {
        int32_t v = 0;
        read(&v, sizeof(v));
        return v;
    }

private:
    std::string path_;
    file_ptr file_;
};

// A temporary file beside the destination, renamed over it by commit() and removed otherwise,
// so a failure never leaves a partial model where a loader could find it.
class output_file {
public:
    explicit output_file(const std::string & path) : path_(path) {
        const fs::path target(path);
        const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
            fail("the output directory '" + dir.string() + "' does not exist");
        }
        std::random_device random;
        const uint64_t tag = (uint64_t{random()} << 32) ^ random();
        char hex[17];
        std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(tag));
        temp_ = dir / ("." + target.filename().string() + "." + hex + ".part");
        // "x": never clobber a file of the same name; the umask applies, unlike mkstemp's 0600.
        file_.reset(std::fopen(temp_.string().c_str(), "wbx"));
        if (!file_) {
            fail("cannot create a file in '" + dir.string() + "': " + std::strerror(errno));
        }
    }

    output_file(const output_file &) = delete;
    output_file & operator=(const output_file &) = delete;

    ~output_file() {
        if (!committed_) {
            file_.reset();
            std::error_code ec;
            fs::remove(temp_, ec);
        }
    }

    void write(const void * data, size_t n) {
        if (std::fwrite(data, 1, n, file_.get()) != n) {
            fail(std::string("cannot write: ") + std::strerror(errno));
        }
    }

    void i32(int32_t v) { write(&v, sizeof(v)); }

    void commit() {
        FILE * f = file_.get();
        // The rename must not land before the data does (power loss, network file systems).
#ifdef _WIN32
        const bool synced = std::fflush(f) == 0 && _commit(_fileno(f)) == 0;
#else
        const bool synced = std::fflush(f) == 0 && fsync(fileno(f)) == 0;
#endif
        if (!synced || std::fclose(file_.release()) != 0) {
            fail(std::string("cannot write: ") + std::strerror(errno));
        }
        std::error_code ec;
        fs::rename(temp_, fs::path(path_), ec);
        if (ec) {
            fail("cannot rename the finished file into place: " + ec.message());
        }
        committed_ = true;
    }

private:
    [[noreturn]] void fail(const std::string & reason) const {
        throw conversion_error("cannot write quantized model '" + path_ + "': " + reason);
    }

    std::string path_;
    fs::path temp_;
    file_ptr file_;
    bool committed_ = false;
};

void copy_bytes(input_file & in, output_file & out, uint64_t n) {
    std::vector<char> buffer(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)));
    while (n > 0) {
        const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, buffer.size()));
        in.read(buffer.data(), chunk);
        out.write(buffer.data(), chunk);
        n -= chunk;
    }
}

// Converts one tensor's data from `src` to `dst` type, a few rows at a time.
void convert_tensor(input_file & in, output_file & out, const std::string & name, ggml_type src,
                    ggml_type dst, int64_t n_per_row, int64_t n_rows) {
    if (src == dst) {
        copy_bytes(in, out, ggml_row_size(src, n_per_row) * static_cast<uint64_t>(n_rows));
        return;
    }
    if (src != GGML_TYPE_F32 && src != GGML_TYPE_F16) {
        in.fail(std::string("tensor '") + name + "' is " + ggml_type_name(src) +
                "; quantize from an f16 or f32 model");
    }
    if (n_per_row % ggml_blck_size(dst) != 0) {
        in.fail("tensor '" + name + "' has rows of " + std::to_string(n_per_row) +
                " elements, not a multiple of the " + ggml_type_name(dst) + " block size");
    }
    const int64_t rows_per_step = std::max<int64_t>(1, k_step_elements / n_per_row);
    std::vector<ggml_fp16_t> halves;
    std::vector<float> floats;
    std::vector<uint8_t> packed;
    for (int64_t row = 0; row < n_rows; row += rows_per_step) {
        const int64_t rows = std::min(rows_per_step, n_rows - row);
        const auto n = static_cast<size_t>(rows * n_per_row);
        floats.resize(n);
        if (src == GGML_TYPE_F16) {
            halves.resize(n);
            in.read(halves.data(), n * sizeof(ggml_fp16_t));
            ggml_fp16_to_fp32_row(halves.data(), floats.data(), static_cast<int64_t>(n));
        } else {
            in.read(floats.data(), n * sizeof(float));
        }
        packed.resize(ggml_row_size(dst, n_per_row) * static_cast<size_t>(rows));
        const size_t size = ggml_quantize_chunk(dst, floats.data(), packed.data(), 0, rows, n_per_row, nullptr);
        out.write(packed.data(), size);
    }
}

} // namespace

void quantize_model(const std::string & src_path, const std::string & dst_path, const std::string & type) {
    const target_format & target = find_target(type);
    // Validates the whole layout first, so the copy below can trust every size it reads. F32
    // kernels are fine here: converting them away is the point.
    const ggml_file_info info = inspect_ggml_file(src_path, /*for_inference=*/false);
    const int32_t src_ftype = info.ftype % GGML_QNT_VERSION_FACTOR;
    if (src_ftype != GGML_FTYPE_ALL_F32 && src_ftype != GGML_FTYPE_MOSTLY_F16) {
        throw conversion_error("cannot quantize model '" + src_path + "': it is quantized already (ftype " +
                               std::to_string(info.ftype) + "); start from an f16 or f32 model");
    }
    const ggml_type wtype = ggml_ftype_to_ggml_type(target.ftype);
    // whisper.cpp's quantizer stamps the quantization format version into a quantized file's
    // ftype (its loader takes ftype modulo the factor); f16 files carry none.
    const int32_t dst_ftype = ggml_is_quantized(wtype)
        ? GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + target.ftype
        : static_cast<int32_t>(target.ftype);

    input_file in(src_path);
    output_file out(dst_path);

    // Magic and the ten dimensions as they are, then the new ftype.
    int32_t header[12];
    in.read(header, sizeof(header));
    header[11] = dst_ftype;
    out.write(header, sizeof(header));

    const int32_t n_mel = in.i32();
    const int32_t n_fft = in.i32();
    out.i32(n_mel);
    out.i32(n_fft);
    copy_bytes(in, out, static_cast<uint64_t>(n_mel) * static_cast<uint64_t>(n_fft) * sizeof(float));

    const int32_t n_tokens = in.i32();
    out.i32(n_tokens);
    for (int32_t i = 0; i < n_tokens; ++i) {
        const int32_t len = in.i32();
        out.i32(len);
        copy_bytes(in, out, static_cast<uint64_t>(len));
    }

    for (int32_t i = 0; i < info.n_tensors; ++i) {
        const int32_t n_dims = in.i32();
        const int32_t name_len = in.i32();
        const auto src = static_cast<ggml_type>(in.i32());
        int32_t ne[4] = {1, 1, 1, 1};
        in.read(ne, sizeof(int32_t) * static_cast<size_t>(n_dims));
        std::string name(static_cast<size_t>(name_len), '\0');
        in.read(name.data(), name.size());

        const ggml_type dst = target_type(name, n_dims, src, wtype);
        out.i32(n_dims);
        out.i32(name_len);
        out.i32(static_cast<int32_t>(dst));
        out.write(ne, sizeof(int32_t) * static_cast<size_t>(n_dims));
        out.write(name.data(), name.size());
        convert_tensor(in, out, name, src, dst, ne[0], int64_t{ne[1]} * ne[2] * ne[3]);
    }
    out.commit();
}

} // namespace dattavani
