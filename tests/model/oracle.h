// A test oracle: a plain, slow forward pass in double precision for the `llama`,
// `phi3` and `gemma2` architectures, written from the models' definitions and
// sharing no code with the engine's forward pass (src/model). It reads a GGUF file
// through the gguf reader and dequantizes every weight to double once
// (quant::dequantize_row), then evaluates a token sequence from position 0 with a
// full, exact KV history: no activation quantization, no caches of lower precision.
// What it computes, per block (x: the residual stream, one row per position):
//   xn = rmsnorm(x) * attn_norm                 (GGUF stores Gemma's 1 + w already)
//   q, k, v = Wq xn, Wk xn, Wv xn               (Phi-3: rows of one fused attn_qkv)
//   rope(q), rope(k)                            (adjacent pairs: llama; halves: phi3, gemma2)
//   a = softmax(cap(q.k * scale)) v             (causal, GQA, optional sliding window)
//   y = Wo a; Gemma 2: y = rmsnorm(y) * post_attention_norm; x += y
//   xn = rmsnorm(x) * ffn_norm; h = act(Wgate xn) * (Wup xn)   (SiLU; Gemma 2: GELU-tanh)
//   y = Wdown h; Gemma 2: y = rmsnorm(y) * post_ffw_norm; x += y
// then logits = Whead (rmsnorm(x) * output_norm), Gemma 2 soft-capped.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace loom::oracle {

// Switches that turn one feature of the architecture off, so tests can show that a
// synthetic model and prompt actually exercise it (the ablated logits must differ).
struct Ablation {
    bool attn_softcap = false, final_softcap = false;  // drop the soft-caps
    bool window = false;                               // full attention on every layer
    bool rope_factors = false;                         // ignore rope_freqs / LongRoPE factors
    bool attn_factor = false;                          // ignore the LongRoPE attention factor
    bool rope_mode = false;                            // the other pairing (halves <-> adjacent)
    bool post_norms = false;                           // skip Gemma 2's post-norms
    bool embed_scale = false;                          // skip Gemma's sqrt(d) embedding scale
    bool norm_weights = false;                         // RMSNorm without its weights
};

struct Config {  // the hyperparameters the oracle read (for tests to check)
    std::string arch;
    int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0, n_rot = 0;
    int n_ctx_train = 0, n_ctx_orig = 0;
    double eps = 0, theta = 0, attn_softcap = 0, final_softcap = 0, query_scale = 0, attn_factor = 1;
    bool neox = false, gelu = false, scale_embd = false, tied = false;
    std::vector<int> window;  // per layer, 0 = full context
};

class Oracle {
public:
    explicit Oracle(const std::string& gguf_path);
    const Config& config() const { return c_; }
    // Logits ([T][n_vocab]) of every position of `tokens`, at positions pos0, pos0 + 1, ...
    // with nothing before them. n_ctx: the runtime's context size (Phi-3 picks its
    // LongRoPE factors by it).
    std::vector<std::vector<double>> logits(std::span<const int32_t> tokens, int n_ctx, int pos0 = 0,
                                            const Ablation& off = {}) const;

private:
    struct Mat {  // n_out rows of n_in
        int n_in = 0, n_out = 0;
        std::vector<double> w;
        const double* row(int r) const { return w.data() + static_cast<size_t>(r) * n_in; }
    };
    struct Layer {
        std::vector<double> attn_norm, ffn_norm, post_attn_norm, post_ffn_norm;
        Mat wq, wk, wv, wo, gate, up, down;
    };
    Config c_;
    Mat embd_, head_;
    std::vector<double> out_norm_, rope_freqs_, factors_long_, factors_short_;
    std::vector<Layer> layers_;
};

}  // namespace loom::oracle
