// Chat templates: names, choice by the file's template and vocabulary, rendering
// (as text and as parts), tokenization with control tokens only from the template.
#include "chat/chat.h"

#include <algorithm>
#include <stdexcept>

namespace loom {

std::optional<ChatTemplate> chat_template_from_name(std::string_view n) {
    if (n == "llama3" || n == "llama-3") return ChatTemplate::Llama3;
    if (n == "phi3" || n == "phi-3") return ChatTemplate::Phi3;
    if (n == "gemma2" || n == "gemma" || n == "gemma-2") return ChatTemplate::Gemma2;
    if (n == "chatml") return ChatTemplate::ChatML;
    return std::nullopt;
}

std::string_view chat_template_name(ChatTemplate t) {
    switch (t) {
    case ChatTemplate::Llama3: return "llama3";
    case ChatTemplate::Phi3: return "phi3";
    case ChatTemplate::Gemma2: return "gemma2";
    case ChatTemplate::ChatML: return "chatml";
    }
    return "?";
}

const char* known_chat_templates() { return "llama3, phi3, gemma2, chatml"; }

std::vector<std::string> chat_template_tokens(ChatTemplate t) {
    switch (t) {
    case ChatTemplate::Llama3: return {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
    case ChatTemplate::Phi3: return {"<|user|>", "<|assistant|>", "<|end|>"};
    case ChatTemplate::Gemma2: return {"<start_of_turn>", "<end_of_turn>"};
    case ChatTemplate::ChatML: return {"<|im_start|>", "<|im_end|>"};
    }
    return {};
}

namespace {

// The first of the template's control tokens that is not a special token of the
// vocabulary ("" when all are).
std::string missing_token(ChatTemplate t, const Tokenizer& tok) {
    for (const std::string& s : chat_template_tokens(t)) {
        const auto id = tok.find_token(s);
        if (!id) return s;
        const TokenType ty = tok.token_type(*id);
        if (ty != TokenType::Control && ty != TokenType::UserDefined) return s;
    }
    return "";
}

}  // namespace

ChatTemplateChoice choose_chat_template(const gguf::File& f, const Tokenizer& tok) {
    const std::string remedy = std::string("; name one with --chat-template NAME (") + known_chat_templates() + ")";
    if (const gguf::Value* v = f.find("tokenizer.chat_template"); v && v->type == gguf::ValueType::STRING) {
        const std::string& tmpl = v->str;
        std::optional<ChatTemplate> t;
        if (tmpl.find("<|start_header_id|>") != std::string::npos) t = ChatTemplate::Llama3;
        else if (tmpl.find("<|im_start|>") != std::string::npos) t = ChatTemplate::ChatML;
        else if (tmpl.find("<|user|>") != std::string::npos) t = ChatTemplate::Phi3;
        else if (tmpl.find("<start_of_turn>") != std::string::npos) t = ChatTemplate::Gemma2;
        if (!t)
            throw std::runtime_error(f.path() + ": the file's chat template (key 'tokenizer.chat_template') is not one "
                                     "loom knows" + remedy);
        if (const std::string m = missing_token(*t, tok); !m.empty())
            throw std::runtime_error(f.path() + ": the file's chat template is " + std::string(chat_template_name(*t)) +
                                     " but '" + m + "' is not a special token of its vocabulary" + remedy);
        return {*t, "from tokenizer.chat_template"};
    }
    // No template in the file: the vocabulary's control tokens decide, the
    // architecture's own family first.
    const std::string arch = f.get_string("general.architecture", "");
    std::vector<ChatTemplate> order = {ChatTemplate::Llama3, ChatTemplate::Phi3, ChatTemplate::Gemma2, ChatTemplate::ChatML};
    const auto own = arch == "phi3" ? ChatTemplate::Phi3 : arch == "gemma2" ? ChatTemplate::Gemma2 : ChatTemplate::Llama3;
    std::stable_partition(order.begin(), order.end(), [&](ChatTemplate t) { return t == own; });
    for (ChatTemplate t : order)
        if (missing_token(t, tok).empty()) return {t, "from the vocabulary's control tokens (no tokenizer.chat_template)"};
    throw std::runtime_error(f.path() + ": no chat template: the file has no 'tokenizer.chat_template' and its "
                             "vocabulary has the control tokens of none loom knows" + remedy);
}

ChatTemplate detect_chat_template(const gguf::File& f) {
    return choose_chat_template(f, *Tokenizer::from_gguf(f)).tmpl;
}

static std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::vector<ChatPart> render_chat_parts(ChatTemplate t, std::span<const ChatMessage> msgs, bool gen) {
    std::vector<ChatPart> out;
    auto tmpl = [&](std::string s) {
        if (!out.empty() && !out.back().content) out.back().text += s;
        else out.push_back({std::move(s), false});
    };
    auto content = [&](std::string s) {
        if (!s.empty()) out.push_back({std::move(s), true});
    };
    switch (t) {
    case ChatTemplate::Llama3:
        for (const auto& m : msgs) {
            tmpl("<|start_header_id|>" + m.role + "<|end_header_id|>\n\n");
            content(trim(m.content));
            tmpl("<|eot_id|>");
        }
        if (gen) tmpl("<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case ChatTemplate::Phi3:
        for (const auto& m : msgs) {
            tmpl("<|" + m.role + "|>\n");
            content(m.content);
            tmpl("<|end|>\n");
        }
        if (gen) tmpl("<|assistant|>\n");
        break;
    case ChatTemplate::ChatML:
        for (const auto& m : msgs) {
            tmpl("<|im_start|>" + m.role + "\n");
            content(m.content);
            tmpl("<|im_end|>\n");
        }
        if (gen) tmpl("<|im_start|>assistant\n");
        break;
    case ChatTemplate::Gemma2: {
        std::string system;
        for (const auto& m : msgs) {
            if (m.role == "system") {
                system += (system.empty() ? "" : "\n\n") + trim(m.content);
                continue;
            }
            const std::string role = m.role == "assistant" ? "model" : m.role;
            std::string text = trim(m.content);
            if (role == "user" && !system.empty()) {  // Gemma has no system turn
                text = system + "\n\n" + text;
                system.clear();
            }
            tmpl("<start_of_turn>" + role + "\n");
            content(std::move(text));
            tmpl("<end_of_turn>\n");
        }
        if (gen) tmpl("<start_of_turn>model\n");
        break;
    }
    }
    return out;
}

std::string render_chat(ChatTemplate t, std::span<const ChatMessage> msgs, bool gen) {
    std::string out;
    for (const ChatPart& p : render_chat_parts(t, msgs, gen)) out += p.text;
    return out;
}

std::vector<int32_t> tokenize_chat(const Tokenizer& tok, std::span<const ChatPart> parts, size_t from, bool add_special) {
    std::vector<Tokenizer::TextPiece> pieces;
    size_t at = 0;
    for (const ChatPart& p : parts) {
        const size_t end = at + p.text.size();
        if (end > from) {
            const size_t skip = from > at ? from - at : 0;
            pieces.push_back({std::string_view(p.text).substr(skip), !p.content});
        }
        at = end;
    }
    return tok.tokenize(pieces, add_special);
}

std::vector<int32_t> tokenize_chat(const Tokenizer& tok, ChatTemplate t, std::span<const ChatMessage> msgs, bool gen) {
    return tokenize_chat(tok, render_chat_parts(t, msgs, gen), 0, /*add_special=*/true);
}

}  // namespace loom
