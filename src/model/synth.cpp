#include "model/synth.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "gguf/gguf.h"
#include "quant/formats.h"
#include "quant/ref.h"
#include "util/threadpool.h"

namespace loom {

// ------------------------------------------------------------------ shapes

const std::vector<SynthShape>& synth_shapes() {
    //                 name          arch      description                  d     L   H   KV  hd   ff     vocab  ctx     theta   eps   tied  ropeF win capA capF
    static const std::vector<SynthShape> shapes = {
        {"llama3-1b", "llama", "Llama 3.2 1B", 2048, 16, 32, 8, 64, 8192, 128256, 131072, 500000, 1e-5f, true, 32, 0, 0, 0},
        {"llama3-8b", "llama", "Llama 3.1 8B", 4096, 32, 32, 8, 128, 14336, 128256, 131072, 500000, 1e-5f, false, 8, 0, 0, 0},
        {"llama3-70b", "llama", "Llama 3.1 70B", 8192, 80, 64, 8, 128, 28672, 128256, 131072, 500000, 1e-5f, false, 8, 0, 0, 0},
        {"phi3-mini", "phi3", "Phi-3-mini 3.8B (4k)", 3072, 32, 32, 32, 96, 8192, 32064, 4096, 10000, 1e-5f, false, 0, 2047, 0, 0},
        {"tiny", "llama", "tiny Llama for tests", 64, 2, 4, 2, 16, 128, 512, 4096, 500000, 1e-5f, false, 0, 0, 0, 0},
        {"gemma2-27b", "gemma2", "Gemma 2 27B", 4608, 46, 32, 16, 128, 36864, 256000, 8192, 10000, 1e-6f, true, 0, 4096, 50, 30},
        // Tiny shapes for the tests' reference forward pass: every feature of each
        // architecture at a size where a double-precision oracle is instant (GQA,
        // head_dim != d / n_head, rope factors, tied heads, windows shorter than a
        // prompt, soft-caps small enough to bite).
        {"tiny-llama3", "llama", "tiny Llama 3.1 for tests", 64, 2, 4, 1, 16, 96, 512, 131072, 500000, 1e-5f, true, 8, 0, 0, 0},
        {"tiny-phi3", "phi3", "tiny Phi-3 for tests", 64, 2, 4, 2, 16, 96, 512, 4096, 10000, 1e-5f, false, 0, 0, 0, 0},
        {"tiny-gemma2", "gemma2", "tiny Gemma 2 for tests", 64, 3, 4, 2, 32, 96, 512, 8192, 10000, 1e-6f, true, 0, 8, 3, 10},
        // Rows of whole 256-blocks (K-quants; Q4_0 with its Q6_K head).
        {"tiny-256", "llama", "tiny Llama 3.1 with 256-wide rows for tests", 256, 2, 4, 2, 64, 256, 512, 131072, 500000, 1e-5f, false, 8, 0, 0, 0},
    };
    return shapes;
}

const SynthShape& synth_shape(const std::string& name) {
    for (const auto& s : synth_shapes())
        if (s.name == name) return s;
    std::string known;
    for (const auto& s : synth_shapes()) known += (known.empty() ? "" : ", ") + s.name;
    throw std::invalid_argument("unknown shape '" + name + "' (known: " + known + ")");
}

namespace {

// ------------------------------------------------------------------ random fill

struct Rng {  // splitmix64: fast, deterministic per (tensor, chunk)
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    float uniform() { return (next() >> 40) * (1.0f / 16777216.0f); }           // [0,1)
    float normal() { return (uniform() + uniform() + uniform() + uniform() - 2.0f) * 1.7320508f; }  // ~N(0,1)
};

uint64_t hash_str(const std::string& s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

// Fills `n_blocks` blocks of type t starting at block b0 with values of std ~ `std`.
void fill_blocks(GgmlType t, uint8_t* dst, int64_t n_blocks, float std, Rng& r) {
    using namespace quant;
    switch (t) {
    case GgmlType::Q4_0: {
        const uint16_t d = f32_to_fp16(std / 4.6f);
        for (int64_t b = 0; b < n_blocks; ++b) {
            auto* blk = reinterpret_cast<BlockQ4_0*>(dst) + b;
            blk->d = d;
            for (int i = 0; i < 16; i += 8) {
                const uint64_t v = r.next();
                std::memcpy(blk->qs + i, &v, 8);
            }
        }
        break;
    }
    case GgmlType::Q8_0: {
        const uint16_t d = f32_to_fp16(std / 73.0f);
        for (int64_t b = 0; b < n_blocks; ++b) {
            auto* blk = reinterpret_cast<BlockQ8_0*>(dst) + b;
            blk->d = d;
            for (int i = 0; i < 32; i += 8) {
                const uint64_t v = r.next();
                std::memcpy(blk->qs + i, &v, 8);
            }
        }
        break;
    }
    case GgmlType::Q6_K: {
        // value = d * scale * (q - 32), q uniform in 0..63 (std ~18.5), scale in 4..11
        const uint16_t d = f32_to_fp16(std / (18.5f * 7.5f));
        for (int64_t b = 0; b < n_blocks; ++b) {
            auto* blk = reinterpret_cast<BlockQ6_K*>(dst) + b;
            for (size_t i = 0; i < sizeof blk->ql; i += 8) {
                const uint64_t v = r.next();
                std::memcpy(blk->ql + i, &v, 8);
            }
            for (size_t i = 0; i < sizeof blk->qh; i += 8) {
                const uint64_t v = r.next();
                std::memcpy(blk->qh + i, &v, 8);
            }
            for (auto& s : blk->scales) s = static_cast<int8_t>(4 + r.next() % 8);
            blk->d = d;
        }
        break;
    }
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
        // value = d * sc * q - dmin * m, q uniform in 0..nmax, sc in 40..63, m in 20..39,
        // dmin set so the mean is about zero.
        const bool q5 = t == GgmlType::Q5_K;
        const float qstd = q5 ? 9.23f : 4.61f, qmean = q5 ? 15.5f : 7.5f;
        const float df = std / (qstd * 51.5f);
        const uint16_t d = f32_to_fp16(df), dmin = f32_to_fp16(df * 51.5f * qmean / 29.5f);
        const size_t bytes = q5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
        for (int64_t b = 0; b < n_blocks; ++b) {
            uint8_t* blk = dst + b * bytes;
            std::memcpy(blk, &d, 2);
            std::memcpy(blk + 2, &dmin, 2);
            uint8_t* scales = blk + 4;
            std::memset(scales, 0, 12);
            for (int j = 0; j < 8; ++j)
                ref::set_scale_min_k4(j, scales, static_cast<uint8_t>(40 + r.next() % 24),
                                      static_cast<uint8_t>(20 + r.next() % 20));
            for (size_t i = 16; i < bytes; i += 8) {  // qh (Q5_K) and qs
                const uint64_t v = r.next();
                std::memcpy(blk + i, &v, 8);
            }
        }
        break;
    }
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::F32: {
        for (int64_t i = 0; i < n_blocks; ++i) {
            const float v = r.normal() * std;
            if (t == GgmlType::F32) std::memcpy(dst + 4 * i, &v, 4);
            else {
                const uint16_t h = t == GgmlType::F16 ? f32_to_fp16(v) : f32_to_bf16(v);
                std::memcpy(dst + 2 * i, &h, 2);
            }
        }
        break;
    }
    default: throw std::invalid_argument("synth: unsupported weight type " + std::string(type_name(t)));
    }
}

// Llama 3.1 frequency factors (rope_freqs.weight), as the reference converter computes them.
std::vector<float> llama3_rope_factors(int head_dim, float theta, float factor) {
    const float low_freq_factor = 1.0f, high_freq_factor = 4.0f, old_ctx = 8192.0f;
    const float low_wavelen = old_ctx / low_freq_factor, high_wavelen = old_ctx / high_freq_factor;
    std::vector<float> f;
    for (int i = 0; i < head_dim; i += 2) {
        const float freq = 1.0f / std::pow(theta, float(i) / head_dim);
        const float wavelen = 2.0f * float(M_PI) / freq;
        if (wavelen < high_wavelen) f.push_back(1.0f);
        else if (wavelen > low_wavelen) f.push_back(factor);
        else {
            const float smooth = (old_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
            f.push_back(1.0f / ((1 - smooth) / factor + smooth));
        }
    }
    return f;
}

// GPT-2 byte-to-unicode table as UTF-8 strings (the 256 base tokens of byte-level BPE).
std::string byte_token(int b) {
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        int n = 0;
        for (int x = 0; x < b; ++x)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
        cp = 256 + n;
    }
    std::string s;
    if (cp < 0x80) s += char(cp);
    else {
        s += char(0xC0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3F));
    }
    return s;
}

// A synthetic vocabulary of the right size: byte tokens, fillers, and the
// family's special tokens at their real ids, so text can be tokenized.
void add_vocab(gguf::Writer& w, const SynthShape& s) {
    std::vector<std::string> tokens(s.n_vocab);
    std::vector<int32_t> types(s.n_vocab, 1);
    std::vector<float> scores;
    if (s.arch == "llama") {
        // Special tokens at their Llama 3 ids (128000...), or in the last 256 ids of a small vocab.
        const int base = s.n_vocab >= 128256 ? 128000 : s.n_vocab - 256;
        for (int i = 0; i < s.n_vocab; ++i) tokens[i] = i < 256 ? byte_token(i) : "<synth_" + std::to_string(i) + ">";
        for (int i = base; i < s.n_vocab; ++i) {
            tokens[i] = "<|reserved_special_token_" + std::to_string(i - base) + "|>";
            types[i] = 3;
        }
        const std::pair<int, const char*> special[] = {{0, "<|begin_of_text|>"}, {1, "<|end_of_text|>"},
                                                       {6, "<|start_header_id|>"}, {7, "<|end_header_id|>"},
                                                       {8, "<|eom_id|>"}, {9, "<|eot_id|>"}};
        for (auto [id, text] : special) tokens[base + id] = text;
        w.set("tokenizer.ggml.model", gguf::Value::string("gpt2"));
        w.set("tokenizer.ggml.pre", gguf::Value::string("llama-bpe"));
        w.set("tokenizer.ggml.merges", gguf::Value::string_array({}));
        w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(base));
        w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(base + 9));
    } else {
        // SentencePiece: control tokens, byte fallback, then scored pieces.
        scores.assign(s.n_vocab, 0.0f);
        const bool gemma = s.arch == "gemma2";
        const int byte0 = gemma ? 217 : 3;
        for (int i = 0; i < s.n_vocab; ++i) {
            if (i >= byte0 && i < byte0 + 256) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "<0x%02X>", i - byte0);
                tokens[i] = buf;
                types[i] = 6;
            } else {
                tokens[i] = "\xE2\x96\x81synth" + std::to_string(i);
                scores[i] = -static_cast<float>(i);
            }
        }
        auto ctl = [&](int id, const char* text) { tokens[id] = text; types[id] = 3; };
        if (gemma) {
            ctl(0, "<pad>"); ctl(1, "<eos>"); ctl(2, "<bos>"); ctl(3, "<unk>"); types[3] = 2;
            ctl(106, "<start_of_turn>"); ctl(107, "<end_of_turn>");
        } else {
            ctl(0, "<unk>"); types[0] = 2; ctl(1, "<s>"); ctl(2, "</s>");
            const char* phi[] = {"<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>",
                                 "<|placeholder3|>", "<|placeholder4|>", "<|system|>", "<|end|>",
                                 "<|placeholder5|>", "<|placeholder6|>", "<|user|>"};
            for (int i = 0; i < 11 && 32000 + i < s.n_vocab; ++i) ctl(32000 + i, phi[i]);
        }
        w.set("tokenizer.ggml.model", gguf::Value::string("llama"));
        w.set("tokenizer.ggml.scores", gguf::Value::f32_array(scores));
        w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(gemma ? 2 : 1));
        w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(gemma ? 1 : 32000));
    }
    w.set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens));
    w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
    w.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(true));
}

}  // namespace

// ------------------------------------------------------------------ writer

uint64_t synth_write(const std::string& shape_name, const std::string& path, const SynthOptions& opts) {
    const SynthShape& s = synth_shape(shape_name);
    const GgmlType wt = opts.type;
    if (wt != GgmlType::Q4_0 && wt != GgmlType::Q8_0 && wt != GgmlType::Q4_K && wt != GgmlType::Q5_K &&
        wt != GgmlType::Q6_K && wt != GgmlType::F16 && wt != GgmlType::BF16 && wt != GgmlType::F32)
        throw std::invalid_argument("synth: --type must be one of q4_0, q8_0, q4_k, q5_k, q6_k, f16, bf16, f32");
    const int n_layer = opts.n_layer > 0 ? opts.n_layer : s.n_layer;
    const std::string a = s.arch;
    const int window = opts.sliding_window >= 0 ? opts.sliding_window : s.sliding_window;
    const float rope_scale = opts.rope_scale_factor >= 0 ? opts.rope_scale_factor : s.rope_scale_factor;
    const bool longrope = opts.longrope && a == "phi3";
    gguf::Writer w;
    w.set("general.architecture", gguf::Value::string(a));
    w.set("general.name", gguf::Value::string("synthetic " + s.name + " (" + s.description + ", random weights)"));
    // llama.cpp's file types (Q4_K / Q5_K as the _M mixes, which keep a Q6_K head).
    const uint32_t ftype = wt == GgmlType::Q4_0 ? 2 : wt == GgmlType::Q8_0 ? 7 : wt == GgmlType::Q4_K ? 15
                         : wt == GgmlType::Q5_K ? 17 : wt == GgmlType::Q6_K ? 18 : wt == GgmlType::F16 ? 1
                         : wt == GgmlType::BF16 ? 32 : 0;
    w.set("general.file_type", gguf::Value::u32(ftype));
    w.set("general.quantization_version", gguf::Value::u32(2));
    w.set(a + ".context_length", gguf::Value::u32(longrope ? 32 * s.n_ctx : s.n_ctx));
    if (longrope) w.set(a + ".rope.scaling.original_context_length", gguf::Value::u32(s.n_ctx));
    w.set(a + ".embedding_length", gguf::Value::u32(s.n_embd));
    w.set(a + ".block_count", gguf::Value::u32(n_layer));
    w.set(a + ".feed_forward_length", gguf::Value::u32(s.n_ff));
    w.set(a + ".attention.head_count", gguf::Value::u32(s.n_head));
    w.set(a + ".attention.head_count_kv", gguf::Value::u32(s.n_head_kv));
    w.set(a + ".rope.dimension_count", gguf::Value::u32(s.head_dim));
    w.set(a + ".rope.freq_base", gguf::Value::f32(s.rope_theta));
    w.set(a + ".attention.layer_norm_rms_epsilon", gguf::Value::f32(s.norm_eps));
    if (s.head_dim != s.n_embd / s.n_head) {
        w.set(a + ".attention.key_length", gguf::Value::u32(s.head_dim));
        w.set(a + ".attention.value_length", gguf::Value::u32(s.head_dim));
    }
    if (a == "llama") w.set(a + ".vocab_size", gguf::Value::u32(s.n_vocab));
    if (window) w.set(a + ".attention.sliding_window", gguf::Value::u32(window));
    if (s.attn_softcap > 0) w.set(a + ".attn_logit_softcapping", gguf::Value::f32(s.attn_softcap));
    if (s.final_softcap > 0) w.set(a + ".final_logit_softcapping", gguf::Value::f32(s.final_softcap));
    add_vocab(w, s);

    const int d = s.n_embd, qd = s.n_head * s.head_dim, kvd = s.n_head_kv * s.head_dim;
    // Real Q4_0, Q4_K_M and Q5_K_M files carry a Q6_K head (when rows are whole 256-blocks).
    const bool q6_head = wt == GgmlType::Q4_0 || wt == GgmlType::Q4_K || wt == GgmlType::Q5_K;
    const GgmlType head_t = q6_head && d % 256 == 0 ? GgmlType::Q6_K : wt;
    auto pool = std::make_shared<ThreadPool>(opts.n_threads > 0 ? opts.n_threads : default_threads());
    uint64_t tensor_no = 0;
    auto mat = [&](const std::string& name, GgmlType t, int64_t n_in, int64_t n_out, float std) {
        const uint64_t seed = hash_str(name, opts.seed) + tensor_no++;
        w.add_tensor(name, t, {n_in, n_out}, [pool, t, n_in, n_out, std, seed](std::span<uint8_t> dst) {
            const TypeTraits tt = traits(t);
            const int64_t n_blocks = n_in * n_out / tt.block_elems;
            const int64_t chunk = 1 << 14;
            pool->parallel_for((n_blocks + chunk - 1) / chunk, [&](int64_t b, int64_t e, int) {
                for (int64_t c = b; c < e; ++c) {
                    Rng r{seed * 0x100000001B3ull + static_cast<uint64_t>(c)};
                    const int64_t b0 = c * chunk, nb = std::min(chunk, n_blocks - b0);
                    fill_blocks(t, dst.data() + b0 * tt.block_bytes, nb, std, r);
                }
            });
        });
    };
    auto ones = [&](const std::string& name, int64_t n, float value) {
        const uint64_t seed = opts.random_norms ? hash_str(name, opts.seed) : 0;
        w.add_tensor(name, GgmlType::F32, {n}, [n, value, seed](std::span<uint8_t> dst) {
            Rng r{seed};
            for (int64_t i = 0; i < n; ++i) {
                const float v = seed ? value + 0.25f * r.normal() : value;
                std::memcpy(dst.data() + 4 * i, &v, 4);
            }
        });
    };
    // A small F32 vector, copied into the writer's fill (add_tensor(..., data) only
    // keeps the pointer until write()).
    auto f32_vector = [&](const std::string& name, std::vector<float> v) {
        const int64_t n = static_cast<int64_t>(v.size());
        w.add_tensor(name, GgmlType::F32, {n}, [v = std::move(v)](std::span<uint8_t> dst) {
            std::memcpy(dst.data(), v.data(), dst.size());
        });
    };
    auto wstd = [](int64_t n_in) { return 1.0f / std::sqrt(static_cast<float>(n_in)); };

    mat("token_embd.weight", s.tied ? head_t : wt, d, s.n_vocab, 1.0f);
    if (rope_scale > 0 && a == "llama") {
        f32_vector("rope_freqs.weight", llama3_rope_factors(s.head_dim, s.rope_theta, rope_scale));
    }
    if (longrope) {  // short factors near 1, long ones growing to 16 with the wavelength
        std::vector<float> fs, fl;
        for (int i = 0; i < s.head_dim / 2; ++i) {
            const float u = float(i) / float(s.head_dim / 2);
            fs.push_back(1.0f + 0.5f * u);
            fl.push_back(1.0f + 15.0f * u * u);
        }
        f32_vector("rope_factors_short.weight", std::move(fs));
        f32_vector("rope_factors_long.weight", std::move(fl));
    }
    for (int l = 0; l < n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        ones(p + "attn_norm.weight", d, 1.0f);
        if (a == "phi3") {
            mat(p + "attn_qkv.weight", wt, d, qd + 2 * kvd, wstd(d));
        } else {
            mat(p + "attn_q.weight", wt, d, qd, wstd(d));
            mat(p + "attn_k.weight", wt, d, kvd, wstd(d));
            mat(p + "attn_v.weight", wt, d, kvd, wstd(d));
        }
        mat(p + "attn_output.weight", wt, qd, d, wstd(qd));
        if (a == "gemma2") ones(p + "post_attention_norm.weight", d, 1.0f);
        ones(p + "ffn_norm.weight", d, 1.0f);
        if (a == "phi3") {
            mat(p + "ffn_up.weight", wt, d, 2 * s.n_ff, wstd(d));
        } else {
            mat(p + "ffn_gate.weight", wt, d, s.n_ff, wstd(d));
            mat(p + "ffn_up.weight", wt, d, s.n_ff, wstd(d));
        }
        mat(p + "ffn_down.weight", wt, s.n_ff, d, wstd(s.n_ff));
        if (a == "gemma2") ones(p + "post_ffw_norm.weight", d, 1.0f);
    }
    ones("output_norm.weight", d, 1.0f);
    if (!s.tied) mat("output.weight", head_t, d, s.n_vocab, wstd(d));
    w.write(path, opts.progress);
    return w.total_data_bytes();
}

}  // namespace loom
