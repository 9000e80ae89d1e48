# Obtain the whisper.cpp source tree that dattavani builds against.
#
# whisper.cpp is never committed. Its v1.8.5 source ships inside the PyPI sdist of pywhispercpp 1.5.1
# (under whisper.cpp/), and PyPI is the one source every build machine can reach, so we take it from
# there, check the tarball's SHA-256, and extract it once into third_party/whisper.cpp (git-ignored).
# The fixes of WhisperCppFixes.cmake are applied to it there. A stamp file holding the tarball's
# SHA-256 and the fixes' marks a complete extraction: rebuilds reuse it without a download.
#
# Inputs (CMake cache variables):
#   DATTAVANI_WHISPER_CPP_DIR      use this checkout as it is (no download, no stamp check, no fixes)
#   DATTAVANI_WHISPER_CPP_TARBALL  path of an already downloaded pywhispercpp sdist (offline builds)
# Output: WHISPER_CPP_SOURCE_DIR

set(DATTAVANI_PYWHISPERCPP_VERSION "1.5.1")
set(DATTAVANI_PYWHISPERCPP_SHA256 "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5")
set(DATTAVANI_WHISPER_CPP_VERSION "1.8.5")

include("${CMAKE_CURRENT_LIST_DIR}/WhisperCppFixes.cmake")

set(DATTAVANI_WHISPER_CPP_DIR "" CACHE PATH "An existing whisper.cpp checkout to build against")
set(DATTAVANI_WHISPER_CPP_TARBALL "" CACHE FILEPATH
    "A downloaded pywhispercpp-${DATTAVANI_PYWHISPERCPP_VERSION}.tar.gz to extract whisper.cpp from")

function(dattavani_verify_sha256 file)
    file(SHA256 "${file}" actual)
    if(NOT actual STREQUAL DATTAVANI_PYWHISPERCPP_SHA256)
        message(FATAL_ERROR
            "dattavani: ${file} has SHA-256 ${actual}, expected ${DATTAVANI_PYWHISPERCPP_SHA256} "
            "(pywhispercpp ${DATTAVANI_PYWHISPERCPP_VERSION}). Delete it and build again.")
    endif()
endfunction()

function(dattavani_fetch_whisper_cpp out_var)
    if(DATTAVANI_WHISPER_CPP_DIR)
        if(NOT EXISTS "${DATTAVANI_WHISPER_CPP_DIR}/include/whisper.h")
            message(FATAL_ERROR "dattavani: DATTAVANI_WHISPER_CPP_DIR=${DATTAVANI_WHISPER_CPP_DIR} "
                "is not a whisper.cpp checkout (no include/whisper.h)")
        endif()
        message(WARNING "dattavani: building against ${DATTAVANI_WHISPER_CPP_DIR} as it is, "
            "without the fixes of cmake/WhisperCppFixes.cmake")
        set(${out_var} "${DATTAVANI_WHISPER_CPP_DIR}" PARENT_SCOPE)
        return()
    endif()

    set(third_party "${PROJECT_SOURCE_DIR}/third_party")
    set(dest "${third_party}/whisper.cpp")
    set(stamp "${dest}/.dattavani-source-sha256")
    file(SHA256 "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/WhisperCppFixes.cmake" fixes_sha256)
    set(expected "${DATTAVANI_PYWHISPERCPP_SHA256} fixes ${fixes_sha256}")
    if(EXISTS "${stamp}")
        file(READ "${stamp}" stamped)
        if(stamped STREQUAL expected)
            set(${out_var} "${dest}" PARENT_SCOPE)
            return()
        endif()
    endif()

    set(tarball "${DATTAVANI_WHISPER_CPP_TARBALL}")
    if(NOT tarball)
        set(downloads "${third_party}/downloads")
        set(tarball "${downloads}/pywhispercpp-${DATTAVANI_PYWHISPERCPP_VERSION}.tar.gz")
        if(NOT EXISTS "${tarball}")
            message(STATUS "dattavani: downloading whisper.cpp ${DATTAVANI_WHISPER_CPP_VERSION} "
                "(sdist of pywhispercpp ${DATTAVANI_PYWHISPERCPP_VERSION}) with pip")
            # --no-binary names the one package: ':all:' would spread to the nested metadata build.
            # Short retries and timeout: an unreachable index otherwise hangs for many minutes.
            execute_process(
                COMMAND "${Python_EXECUTABLE}" -m pip download --no-deps --no-binary pywhispercpp
                        --retries 1 --timeout 30 --dest "${downloads}"
                        "pywhispercpp==${DATTAVANI_PYWHISPERCPP_VERSION}"
                RESULT_VARIABLE rc
                OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
            if(NOT rc EQUAL 0 OR NOT EXISTS "${tarball}")
                message(FATAL_ERROR
                    "dattavani: could not download pywhispercpp==${DATTAVANI_PYWHISPERCPP_VERSION} "
                    "with pip (exit ${rc}).\n${err}\nOffline, pass the tarball with "
                    "-C cmake.define.DATTAVANI_WHISPER_CPP_TARBALL=PATH or a checkout with "
                    "-C cmake.define.DATTAVANI_WHISPER_CPP_DIR=PATH.")
            endif()
        endif()
    elseif(NOT EXISTS "${tarball}")
        message(FATAL_ERROR "dattavani: DATTAVANI_WHISPER_CPP_TARBALL=${tarball} does not exist")
    endif()
    dattavani_verify_sha256("${tarball}")

    # Extract into a temporary folder, then rename: an interrupted build never leaves a tree that
    # looks complete.
    set(tmp "${third_party}/.whisper.cpp.extracting")
    file(REMOVE_RECURSE "${tmp}")
    file(ARCHIVE_EXTRACT INPUT "${tarball}" DESTINATION "${tmp}"
         PATTERNS "pywhispercpp-${DATTAVANI_PYWHISPERCPP_VERSION}/whisper.cpp")
    set(extracted "${tmp}/pywhispercpp-${DATTAVANI_PYWHISPERCPP_VERSION}/whisper.cpp")
    if(NOT EXISTS "${extracted}/include/whisper.h")
        message(FATAL_ERROR "dattavani: ${tarball} holds no whisper.cpp/include/whisper.h")
    endif()
    dattavani_fix_whisper_cpp("${extracted}")
    file(WRITE "${extracted}/.dattavani-source-sha256" "${expected}")
    file(REMOVE_RECURSE "${dest}")
    file(RENAME "${extracted}" "${dest}")
    file(REMOVE_RECURSE "${tmp}")
    message(STATUS "dattavani: whisper.cpp ${DATTAVANI_WHISPER_CPP_VERSION} extracted to ${dest}")
    set(${out_var} "${dest}" PARENT_SCOPE)
endfunction()
