// loom tokenize: text to token ids with the model's own tokenizer.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace loom::cli {

void add_tokenize(CLI::App& app) {
    struct Opts { std::string model, prompt, file; bool no_bos = false, pieces = false, special = false; };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("tokenize", "Tokenize text; print a JSON list of ids (or id/piece pairs)");
    c->add_option("-m,--model", o->model, "GGUF model or vocabulary file")->required()->check(CLI::ExistingFile);
    c->add_option("-p,--prompt", o->prompt, "Text to tokenize");
    c->add_option("-f,--file", o->file, "Read the text from a file")->check(CLI::ExistingFile);
    c->add_flag("--no-bos", o->no_bos, "Do not add BOS/EOS even if the model's metadata asks for them");
    c->add_flag("--pieces", o->pieces, "Print [id, piece] pairs");
    c->add_flag("--parse-special", o->special, "Recognise control tokens written in the text (<|eot_id|>...)");
    c->callback([o] {
        if (o->prompt.empty() == o->file.empty()) throw std::invalid_argument("give exactly one of -p TEXT and -f FILE");
        const std::string text = o->file.empty() ? o->prompt : read_text_file(o->file);
        auto file = gguf::File::open(o->model);
        auto tok = Tokenizer::from_gguf(*file);
        const auto ids = tok->tokenize(text, !o->no_bos, o->special);
        nlohmann::json j = nlohmann::json::array();
        for (int32_t id : ids) {
            if (o->pieces) {
                // Pieces may be partial UTF-8: show invalid bytes as U+FFFD.
                j.push_back({id, nlohmann::json(tok->token_to_piece(id)).dump(-1, ' ', false,
                                                 nlohmann::json::error_handler_t::replace)});
            } else {
                j.push_back(id);
            }
        }
        if (o->pieces)
            for (auto& p : j) p[1] = nlohmann::json::parse(p[1].get<std::string>());
        std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    });
}

}  // namespace loom::cli
