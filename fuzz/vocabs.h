// The tokenizers the tokenizer fuzz targets run: the vocabularies in ../shared/vocab
// (LOOM_SHARED overrides the folder), loaded once.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace loom::fuzz {

inline const std::vector<std::unique_ptr<Tokenizer>>& vocabs() {
    static const std::vector<std::unique_ptr<Tokenizer>> v = [] {
        const char* env = std::getenv("LOOM_SHARED");
        const std::string dir = std::string(env ? env : LOOM_SHARED_DIR) + "/vocab/ggml-vocab-";
        std::vector<std::unique_ptr<Tokenizer>> r;
        for (const char* name : {"llama-bpe", "gpt-2", "llama-spm", "phi-3"}) {
            try {
                r.push_back(Tokenizer::from_gguf(*gguf::File::open(dir + name + ".gguf")));
            } catch (const std::exception& e) {
                std::fprintf(stderr, "fuzz: %s\n", e.what());
            }
        }
        if (r.empty()) {
            std::fprintf(stderr, "fuzz: no vocabulary found under %s* (set LOOM_SHARED)\n", dir.c_str());
            std::exit(1);
        }
        return r;
    }();
    return v;
}

[[noreturn]] inline void property_failed(const char* target, const std::string& what) {
    std::fprintf(stderr, "%s: property failed: %s\n", target, what.c_str());
    __builtin_trap();
}

}  // namespace loom::fuzz
