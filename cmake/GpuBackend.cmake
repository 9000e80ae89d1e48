# Map the one user-facing switch, DATTAVANI_GPU, onto ggml's backend options.
#
# A backend that was asked for but cannot be configured stops the build with a message that says
# what is missing: a silent CPU build is the bug users hit most with every peer.

set(DATTAVANI_GPU "cpu" CACHE STRING "Compute backend compiled in: cpu, cuda, metal, vulkan or openblas")
set_property(CACHE DATTAVANI_GPU PROPERTY STRINGS cpu cuda metal vulkan openblas)
string(TOLOWER "${DATTAVANI_GPU}" DATTAVANI_GPU)

# The nvidia-cublas wheel (shared libraries only) is where cuBLAS lives on machines whose CUDA
# toolkit lacks it, e.g. a pip-installed toolkit. Returns the wheel's root (…/nvidia/cu13) or "".
function(dattavani_find_cublas_wheel out_var)
    execute_process(
        COMMAND "${Python_EXECUTABLE}" -c
            "import glob, os, sys\nfor p in sys.path:\n    for d in sorted(glob.glob(os.path.join(p, 'nvidia', 'cu1*'))) + [os.path.join(p, 'nvidia', 'cublas')]:\n        if glob.glob(os.path.join(d, 'lib', 'libcublas.so*')):\n            print(d); sys.exit(0)"
        OUTPUT_VARIABLE found OUTPUT_STRIP_TRAILING_WHITESPACE)
    set(${out_var} "${found}" PARENT_SCOPE)
endfunction()

set(DATTAVANI_CUBLAS_WHEEL_DIR "")
if(DATTAVANI_GPU STREQUAL "cpu")
    # Nothing to add: ggml's CPU backend is always built.
elseif(DATTAVANI_GPU STREQUAL "cuda")
    include(CheckLanguage)
    check_language(CUDA)
    if(NOT CMAKE_CUDA_COMPILER)
        message(FATAL_ERROR "dattavani: DATTAVANI_GPU=cuda but no CUDA compiler (nvcc) was found. "
            "Install the CUDA toolkit and put nvcc on PATH (or set CUDACXX), or build with "
            "DATTAVANI_GPU=cpu.")
    endif()
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
        # Current data-centre and consumer cards: Turing, Ampere (A100, RTX 30), Ada (RTX 40),
        # Hopper (H100/H200), plus PTX for newer ones. Each real architecture adds compile time.
        set(CMAKE_CUDA_ARCHITECTURES "75;80;86;89;90;90-virtual")
    endif()
    find_package(CUDAToolkit)
    if(NOT CUDAToolkit_FOUND)
        message(FATAL_ERROR "dattavani: DATTAVANI_GPU=cuda but CMake found no CUDA toolkit")
    endif()
    if(NOT TARGET CUDA::cublas)
        dattavani_find_cublas_wheel(DATTAVANI_CUBLAS_WHEEL_DIR)
        if(NOT DATTAVANI_CUBLAS_WHEEL_DIR)
            message(FATAL_ERROR "dattavani: DATTAVANI_GPU=cuda needs cuBLAS, which this CUDA toolkit "
                "lacks. Install it in the build environment with `pip install nvidia-cublas` "
                "(and build with --no-build-isolation) or install the toolkit's cuBLAS.")
        endif()
        file(GLOB cublas_lib "${DATTAVANI_CUBLAS_WHEEL_DIR}/lib/libcublas.so.*")
        file(GLOB cublaslt_lib "${DATTAVANI_CUBLAS_WHEEL_DIR}/lib/libcublasLt.so.*")
        list(GET cublas_lib 0 cublas_lib)
        list(GET cublaslt_lib 0 cublaslt_lib)
        set(CUDA_cublas_LIBRARY "${cublas_lib}" CACHE FILEPATH "" FORCE)
        set(CUDA_cublasLt_LIBRARY "${cublaslt_lib}" CACHE FILEPATH "" FORCE)
        include_directories(SYSTEM "${DATTAVANI_CUBLAS_WHEEL_DIR}/include")
        message(STATUS "dattavani: cuBLAS from the nvidia-cublas wheel at ${DATTAVANI_CUBLAS_WHEEL_DIR}")
    endif()
    if(NOT TARGET CUDA::cuda_driver)
        # No libcuda stub to link against: skip virtual memory management, which is what needs the
        # driver library at link time (cudart still loads the driver at run time).
        set(GGML_CUDA_NO_VMM ON CACHE BOOL "" FORCE)
    endif()
    set(GGML_CUDA ON CACHE BOOL "" FORCE)
elseif(DATTAVANI_GPU STREQUAL "metal")
    if(NOT APPLE)
        message(FATAL_ERROR "dattavani: DATTAVANI_GPU=metal needs macOS")
    endif()
    set(GGML_METAL ON CACHE BOOL "" FORCE)
    set(GGML_METAL_EMBED_LIBRARY ON CACHE BOOL "" FORCE)
elseif(DATTAVANI_GPU STREQUAL "vulkan")
    find_package(Vulkan COMPONENTS glslc)
    if(NOT Vulkan_FOUND OR NOT Vulkan_GLSLC_EXECUTABLE)
        message(FATAL_ERROR "dattavani: DATTAVANI_GPU=vulkan needs the Vulkan SDK (headers, loader "
            "and glslc); on Debian: apt-get install libvulkan-dev glslc")
    endif()
    # ggml's Vulkan backend uses VK_EXT_layer_settings (an extension of late 2023). With older
    # headers (Debian 12's 1.3.239) its compile fails two minutes into the build with
    # "'LayerSettingEXT' is not a member of 'vk'": say so before building anything.
    file(STRINGS "${Vulkan_INCLUDE_DIR}/vulkan/vulkan_core.h" _dattavani_layer_settings
        LIMIT_COUNT 1 REGEX "#define VK_EXT_layer_settings 1")
    if(NOT _dattavani_layer_settings)
        message(FATAL_ERROR "dattavani: DATTAVANI_GPU=vulkan needs Vulkan headers that define "
            "VK_EXT_layer_settings; those in ${Vulkan_INCLUDE_DIR} (${Vulkan_VERSION}) do not. Install "
            "the LunarG Vulkan SDK or a newer libvulkan-dev (Debian 13), or point "
            "-C cmake.define.Vulkan_INCLUDE_DIR=... at newer headers")
    endif()
    set(GGML_VULKAN ON CACHE BOOL "" FORCE)
elseif(DATTAVANI_GPU STREQUAL "openblas")
    set(BLA_VENDOR OpenBLAS)
    find_package(BLAS)
    if(NOT BLAS_FOUND)
        message(FATAL_ERROR "dattavani: DATTAVANI_GPU=openblas but OpenBLAS was not found; on Debian: "
            "apt-get install libopenblas-dev")
    endif()
    set(GGML_BLAS ON CACHE BOOL "" FORCE)
    set(GGML_BLAS_VENDOR OpenBLAS CACHE STRING "" FORCE)
else()
    message(FATAL_ERROR "dattavani: DATTAVANI_GPU=${DATTAVANI_GPU} is not one of cpu, cuda, metal, "
        "vulkan, openblas")
endif()
message(STATUS "dattavani: compute backend: ${DATTAVANI_GPU}")
