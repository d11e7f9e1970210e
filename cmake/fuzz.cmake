# libFuzzer targets fuzz/<name>.cpp -> build-fuzz/bin/fuzz_<name>, with AddressSanitizer
# and UndefinedBehaviorSanitizer. Only in a clang build with -DLOOM_FUZZ=ON (scripts/fuzz
# configures one); the libraries they link are then built with the same sanitizers.
# The chat and server targets compile the few sources they test (templates, request
# parsing and checks) rather than link the layers above the tokenizer: the fuzz build
# stays small.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "LOOM_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
endif()
set(LOOM_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH "Test data folder (../shared)")
file(GLOB LOOM_FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/*.cpp)
foreach(src ${LOOM_FUZZ_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(fuzz_${name} ${src})
  target_link_libraries(fuzz_${name} PRIVATE loom_tokenizer loom_gguf loom_util)
  target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  target_compile_definitions(fuzz_${name} PRIVATE LOOM_SHARED_DIR="${LOOM_SHARED_DIR}")
endforeach()
if(TARGET fuzz_chat)
  target_sources(fuzz_chat PRIVATE ${CMAKE_SOURCE_DIR}/src/chat/template.cpp)
endif()
if(TARGET fuzz_server)
  target_sources(fuzz_server PRIVATE ${CMAKE_SOURCE_DIR}/src/chat/template.cpp
                 ${CMAKE_SOURCE_DIR}/src/server/api.cpp ${CMAKE_SOURCE_DIR}/src/server/prepare.cpp)
  target_link_libraries(fuzz_server PRIVATE nlohmann_json::nlohmann_json)
endif()
