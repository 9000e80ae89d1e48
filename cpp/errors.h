// C++ exception types of the native core. module.cpp translates each into the matching Python
// class of dattavani.errors, so callers see one set of error types whichever layer raised them.
#pragma once

#include <stdexcept>
#include <string>

namespace dattavani {

struct model_load_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct options_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A model could not be written in another format (quantization); dattavani.errors.ConversionError.
struct conversion_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct transcription_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct cancelled_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

} // namespace dattavani
