// Helpers for the tokenizer tests: cached tokenizers for ../shared vocabularies and models,
// and the .inp / .out reader of the reference harness (llama.cpp's test-tokenizer-0).
#pragma once
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace loom::test {

inline const std::vector<std::string>& vocab_names() {
    static const std::vector<std::string> v = {"llama-bpe", "gpt-2", "llama-spm", "phi-3"};
    return v;
}

inline std::string vocab_path(const std::string& name) {
    return (shared_dir() / "vocab" / ("ggml-vocab-" + name + ".gguf")).string();
}

// Tokenizer of a GGUF file, loaded once per process.
inline const Tokenizer& tokenizer_for(const std::string& path) {
    static std::mutex mu;
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(path);
    if (it == cache.end()) {
        auto f = gguf::File::open(path);
        it = cache.emplace(path, Tokenizer::from_gguf(*f)).first;
    }
    return *it->second;
}

inline const Tokenizer& vocab(const std::string& name) { return tokenizer_for(vocab_path(name)); }

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct VocabCase {
    std::string text;
    std::vector<int32_t> ids;
};

// Same splitting as the reference harness: strings separated by "\n__ggml_vocab_test__\n",
// the .out file holds one line of space-separated ids per string.
inline std::vector<VocabCase> read_vocab_cases(const std::string& name) {
    const std::string base = vocab_path(name);
    const std::string raw = read_file(base + ".inp");
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> inputs;
    size_t pos = 0;
    while (pos < raw.size()) {
        const size_t next = raw.find(sep, pos);
        if (next == std::string::npos) {
            inputs.push_back(raw.substr(pos));
            break;
        }
        inputs.push_back(raw.substr(pos, next - pos));
        pos = next + sep.size();
    }
    std::vector<std::vector<int32_t>> outputs;
    std::istringstream out(read_file(base + ".out"));
    for (std::string line; std::getline(out, line);) {
        std::istringstream ls(line);
        std::vector<int32_t> ids;
        for (int32_t id; ls >> id;) ids.push_back(id);
        outputs.push_back(std::move(ids));
    }
    std::vector<VocabCase> cases;
    if (inputs.size() != outputs.size()) return cases;
    for (size_t i = 0; i < inputs.size(); ++i) cases.push_back({inputs[i], outputs[i]});
    return cases;
}

inline std::string ids_str(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) {
        if (!s.empty()) s += ' ';
        s += std::to_string(id);
    }
    return s;
}

// Printable form of a test string for failure messages.
inline std::string escaped(const std::string& s) {
    std::string r;
    for (char c : s) {
        if (c == '\n') r += "\\n";
        else if (c == '\t') r += "\\t";
        else if (c == '\r') r += "\\r";
        else r += c;
    }
    return "'" + r + "'";
}

}  // namespace loom::test
