// whisper.cpp hands out raw bytes: a token, or a segment cut by max_len, can end inside a UTF-8
// character. Decode with replacement rather than raising on the user's transcript.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

namespace dattavani {

inline pybind11::str decode_utf8(const std::string & text) {
    PyObject * obj = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace");
    if (obj == nullptr) {
        throw pybind11::error_already_set();
    }
    return pybind11::reinterpret_steal<pybind11::str>(obj);
}

} // namespace dattavani
