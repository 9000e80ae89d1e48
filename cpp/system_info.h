// What this build of the core can run on: compiled ggml backends, present devices, CPU features.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace dattavani {

struct device_info {
    std::string name;         // ggml's device name, e.g. "CPU", "CUDA0"
    std::string description;  // e.g. the GPU's marketing name
    std::string type;         // "cpu", "gpu", "igpu" or "accel"
    std::string backend;      // the registry the device belongs to, e.g. "CUDA"
    size_t memory_free = 0;
    size_t memory_total = 0;
};

std::vector<std::string> compiled_backends();
std::vector<device_info> list_devices();
std::string whisper_system_info();

} // namespace dattavani
