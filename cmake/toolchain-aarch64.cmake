# Cross build for 64-bit Arm Linux (Debian multiarch), tested under qemu-user.
#   cmake -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake \
#         -DLOOM_BUILD_BENCHMARKS=OFF
#   LOOM_QEMU_CPU='max,sve=off' ctest --test-dir build-arm64
# Needs (scripts/setup --arm): g++-aarch64-linux-gnu, qemu-user, libpcre2-dev:arm64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER   aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Target files live in the cross sysroot (/usr/aarch64-linux-gnu) and in Debian's
# multiarch dirs (/usr/lib/aarch64-linux-gnu, reached through root "/" plus
# CMAKE_LIBRARY_ARCHITECTURE). Root "/" also lets find_package see the header-only,
# arch-independent packages (nlohmann_json, CLI11) under /usr/share/cmake.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # build tools run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config must only see arm64 (and arch-independent) .pc files.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Static test binaries: qemu runs them with no arm64 loader/libraries needed.
# (CMakeLists.txt restricts find_library to .a archives when LOOM_STATIC is ON.)
set(LOOM_STATIC ON CACHE BOOL "Link executables statically (cross builds run under qemu)")
# No prebuilt arm64 GoogleTest on Debian: build it from /usr/src/googletest.
set(LOOM_GTEST_FROM_SOURCE ON CACHE BOOL "Build GoogleTest from /usr/src/googletest")

# try_run, gtest_discover_tests and ctest run target binaries through qemu.
# LOOM_QEMU_CPU picks the emulated CPU at test time (default: max).
get_filename_component(_loom_qemu_run "${CMAKE_CURRENT_LIST_DIR}/../scripts/qemu-run" ABSOLUTE)
set(CMAKE_CROSSCOMPILING_EMULATOR "${_loom_qemu_run}")
