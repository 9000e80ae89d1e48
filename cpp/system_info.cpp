#include "system_info.h"

#include "ggml-backend.h"
#include "whisper.h"

namespace dattavani {

std::vector<std::string> compiled_backends() {
    std::vector<std::string> names;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        names.emplace_back(ggml_backend_reg_name(ggml_backend_reg_get(i)));
    }
    return names;
}

std::vector<device_info> list_devices() {
    std::vector<device_info> devices;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        device_info info;
        info.name = ggml_backend_dev_name(dev);
        info.description = ggml_backend_dev_description(dev);
        switch (ggml_backend_dev_type(dev)) {
            case GGML_BACKEND_DEVICE_TYPE_CPU: info.type = "cpu"; break;
            case GGML_BACKEND_DEVICE_TYPE_GPU: info.type = "gpu"; break;
            case GGML_BACKEND_DEVICE_TYPE_IGPU: info.type = "igpu"; break;
            default: info.type = "accel"; break;
        }
        ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
        info.backend = reg != nullptr ? ggml_backend_reg_name(reg) : "";
        ggml_backend_dev_memory(dev, &info.memory_free, &info.memory_total);
        devices.push_back(std::move(info));
    }
    return devices;
}

std::string whisper_system_info() {
    return whisper_print_system_info();
}

} // namespace dattavani
