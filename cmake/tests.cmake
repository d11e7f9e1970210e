# One GoogleTest binary per folder under tests/ (tests mirror src/ layers).
# Where the system ships only GoogleTest sources (cross builds), build them here.
if(NOT LOOM_GTEST_FROM_SOURCE)
  find_package(GTest QUIET)
endif()
if(NOT GTest_FOUND)
  add_subdirectory(/usr/src/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
  if(NOT TARGET GTest::gtest_main)  # googletest >= 1.11 defines these aliases itself
    add_library(GTest::gtest ALIAS gtest)
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif()
endif()
include(GoogleTest)

set(LOOM_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH "Test data folder (../shared)")

file(GLOB LOOM_TEST_DIRS LIST_DIRECTORIES true ${CMAKE_SOURCE_DIR}/tests/*)
foreach(dir ${LOOM_TEST_DIRS})
  if(NOT IS_DIRECTORY ${dir})
    continue()
  endif()
  get_filename_component(layer ${dir} NAME)
  # Peak-RSS checks measure the host process: meaningless under an emulator or a sanitizer.
  if(layer STREQUAL "memory" AND (CMAKE_CROSSCOMPILING OR LOOM_SANITIZE))
    continue()
  endif()
  # The HTTP server needs cpp-httplib (absent from cross builds).
  if(layer STREQUAL "server" AND NOT LOOM_HAVE_HTTP)
    continue()
  endif()
  file(GLOB srcs CONFIGURE_DEPENDS ${dir}/*.cpp)
  if(NOT LOOM_HAVE_HTTP)  # tests of loom bench serve's HTTP client
    list(FILTER srcs EXCLUDE REGEX "/serve_[^/]*\\.cpp$")
  endif()
  if(NOT srcs)
    continue()
  endif()
  add_executable(test_${layer} ${srcs})
  target_include_directories(test_${layer} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  # tests/<layer> links that layer's library only, so layers build and test alone.
  set(lib loom_${layer})
  if(layer STREQUAL "model")
    set(lib loom_runtime)  # model tests drive the model through a Context
  elseif(layer STREQUAL "kernels")
    set(lib loom_quant)
  elseif(NOT TARGET ${lib})
    set(lib loomlib)
  endif()
  target_link_libraries(test_${layer} PRIVATE ${lib} nlohmann_json::nlohmann_json GTest::gtest_main)
  # MPI for the pipeline tests: 0 = not wanted in this build (cross, sanitizers: they
  # skip), 1 = built with it, 2 = wanted but not found (they skip, or fail in CI).
  if(LOOM_HAVE_MPI)
    set(_loom_mpi 1)
  elseif(LOOM_WANT_MPI)
    set(_loom_mpi 2)
  else()
    set(_loom_mpi 0)
  endif()
  target_compile_definitions(test_${layer} PRIVATE
      LOOM_SHARED_DIR="${LOOM_SHARED_DIR}" LOOM_BIN_DIR="${CMAKE_BINARY_DIR}/bin" LOOM_TEST_MPI=${_loom_mpi})
  # Cross builds: a test that starts bin/loom must start it through the emulator
  # (qemu-user follows no exec of an aarch64 binary by itself). Empty natively.
  if(CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
    list(JOIN CMAKE_CROSSCOMPILING_EMULATOR " " _loom_emu)
    target_compile_definitions(test_${layer} PRIVATE LOOM_TEST_EMULATOR="${_loom_emu}")
  else()
    target_compile_definitions(test_${layer} PRIVATE LOOM_TEST_EMULATOR="")
  endif()
  if(CMAKE_CROSSCOMPILING)
    target_compile_definitions(test_${layer} PRIVATE LOOM_GOLDEN_BEST_ISA_ONLY)
  endif()
  if(LOOM_SANITIZE)  # tests that measure memory relax that check
    target_compile_definitions(test_${layer} PRIVATE LOOM_SANITIZER_BUILD="${LOOM_SANITIZE}")
  endif()
  gtest_discover_tests(test_${layer} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 120
                       PROPERTIES TIMEOUT 900)
endforeach()

# The GGUF parser is also built and run under AddressSanitizer: hostile files must
# be rejected without a single out-of-bounds read. (A sanitizer build runs it anyway.)
if(NOT CMAKE_CROSSCOMPILING AND NOT LOOM_SANITIZE)
  file(GLOB gguf_srcs ${CMAKE_SOURCE_DIR}/src/gguf/*.cpp)
  file(GLOB gguf_tests ${CMAKE_SOURCE_DIR}/tests/gguf/*.cpp)
  if(gguf_tests)
    add_executable(test_gguf_asan ${gguf_srcs} ${gguf_tests})
    target_include_directories(test_gguf_asan PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/tests)
    target_compile_options(test_gguf_asan PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer -O1)
    target_link_options(test_gguf_asan PRIVATE -fsanitize=address,undefined)
    target_link_libraries(test_gguf_asan PRIVATE GTest::gtest_main Threads::Threads)
    target_compile_definitions(test_gguf_asan PRIVATE LOOM_SHARED_DIR="${LOOM_SHARED_DIR}")
    gtest_discover_tests(test_gguf_asan DISCOVERY_MODE PRE_TEST TEST_PREFIX "asan." PROPERTIES TIMEOUT 600)
  endif()
endif()

# End-to-end: `loom chat` driven through a pseudo-terminal (native only). It needs
# tmux: without it the script skips (exit 77), or fails when CI is set.
if(NOT CMAKE_CROSSCOMPILING)
  add_test(NAME cli.chat_pty COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/chat_pty.sh $<TARGET_FILE:loom>)
  set_tests_properties(cli.chat_pty PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()

# The include graph is a strict stack (no upward edge): checked on every test run.
add_test(NAME layers.include_graph
         COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR}/src -P ${CMAKE_SOURCE_DIR}/cmake/check_layers.cmake)

# The official openai npm client against `loom serve` (tests/server/js; node + npm ci).
if(LOOM_HAVE_HTTP AND NOT CMAKE_CROSSCOMPILING)
  add_test(NAME server.openai_js COMMAND bash ${CMAKE_SOURCE_DIR}/tests/server/js/run.sh $<TARGET_FILE:loom> ${LOOM_SHARED_DIR})
  set_tests_properties(server.openai_js PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()

# deploy/: 2 `loom serve` replicas behind nginx (scripts/replicas, deploy/nginx) on loopback:
# spread, session affinity, a killed replica. Needs nginx and curl (scripts/setup): without
# them it skips (exit 77), or fails when CI is set. About 15-20 s.
if(LOOM_HAVE_HTTP AND NOT CMAKE_CROSSCOMPILING)
  add_test(NAME deploy.replicas COMMAND bash ${CMAKE_SOURCE_DIR}/tests/deploy/replicas.sh $<TARGET_FILE:loom> ${LOOM_SHARED_DIR})
  set_tests_properties(deploy.replicas PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()
