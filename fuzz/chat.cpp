// libFuzzer target: chat-template rendering and tokenization (scripts/fuzz chat
// SECONDS). The first byte picks the template and whether the assistant's turn is
// opened; the rest is messages separated by 0x1E, each a role byte (system, user,
// assistant) and the content. Properties:
//   - a message's content never becomes a control token: the prompt holds as many
//     control tokens as the same conversation with every content "x";
//   - content that holds no special token tokenizes as the whole rendered text with
//     special tokens parsed (the template's own text is unchanged);
//   - Llama 3 with valid UTF-8: the tokens detokenize to BOS + the rendered text.
#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat.h"
#include "tokenizer/unicode.h"
#include "vocabs.h"

using namespace loom;

namespace {

// A vocabulary for each template: the one with its control tokens when there is one.
const Tokenizer& vocab_for(ChatTemplate t) {
    const auto& vs = fuzz::vocabs();
    const std::string marker = chat_template_tokens(t).front();
    for (const auto& v : vs)
        if (const auto id = v->find_token(marker); id && v->is_control(*id)) return *v;
    return *vs[static_cast<size_t>(t) % vs.size()];
}

int controls(const Tokenizer& tok, const std::vector<int32_t>& ids) {
    int n = 0;
    for (int32_t id : ids) n += tok.is_control(id);
    return n;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)fuzz::vocabs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    static const ChatTemplate kTemplates[] = {ChatTemplate::Llama3, ChatTemplate::Phi3, ChatTemplate::Gemma2,
                                              ChatTemplate::ChatML};
    static const char* kRoles[] = {"system", "user", "assistant"};
    const ChatTemplate t = kTemplates[data[0] & 3];
    const bool gen = (data[0] >> 2) & 1;
    std::vector<ChatMessage> msgs;
    const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
    for (size_t b = 0; b <= rest.size() && !rest.empty();) {
        size_t e = rest.find('\x1e', b);
        if (e == std::string::npos) e = rest.size();
        const std::string m = rest.substr(b, e - b);
        if (!m.empty()) msgs.push_back({kRoles[static_cast<uint8_t>(m[0]) % 3], m.substr(1)});
        b = e + 1;
    }
    const Tokenizer& tok = vocab_for(t);

    const auto parts = render_chat_parts(t, msgs, gen);
    std::string joined;
    for (const auto& p : parts) joined += p.text;
    const std::string text = render_chat(t, msgs, gen);
    if (joined != text) fuzz::property_failed("fuzz_chat", "render_chat differs from its parts");

    const auto ids = tokenize_chat(tok, t, msgs, gen);
    for (int32_t id : ids)
        if (id < 0 || id >= tok.n_vocab()) fuzz::property_failed("fuzz_chat", "token id out of range");
    std::vector<ChatMessage> plain = msgs;
    for (auto& m : plain) m.content = "x";
    if (controls(tok, ids) != controls(tok, tokenize_chat(tok, t, plain, gen)))
        fuzz::property_failed("fuzz_chat", "a message's content became a control token (" +
                                               std::string(chat_template_name(t)) + ")");

    bool specials_in_content = false, valid = true;
    for (const auto& m : msgs) {
        specials_in_content |= controls(tok, tok.tokenize(m.content, false, true)) > 0;
        valid &= tok::utf8_valid(m.content);
    }
    if (!specials_in_content && ids != tok.tokenize(text, true, true))
        fuzz::property_failed("fuzz_chat", "content without special tokens tokenized differently from the rendered text (" +
                                               std::string(chat_template_name(t)) + ")");
    if (t == ChatTemplate::Llama3 && valid && tok.model() == "gpt2" && tok.add_bos() && tok.bos() >= 0 &&
        tok.detokenize(ids, /*render_special=*/true) != tok.token_to_piece(tok.bos()) + text)
        fuzz::property_failed("fuzz_chat", "Llama 3 prompt does not detokenize to its rendered text");
    return 0;
}
