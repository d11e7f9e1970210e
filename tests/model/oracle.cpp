// The test oracle (see oracle.h): every operation spelled out in double precision,
// one position, one head, one element at a time.
#include "oracle.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "gguf/gguf.h"
#include "gguf/types.h"
#include "quant/formats.h"

namespace loom::oracle {
namespace {

using Vec = std::vector<double>;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("oracle: " + what); }

// All elements of a tensor as doubles, in file order (rows of ne[0]).
Vec read_tensor(const gguf::File& f, const std::string& name, int64_t n_in, int64_t n_rows) {
    const gguf::TensorInfo* t = f.find_tensor(name);
    if (!t) fail("missing tensor " + name);
    if (t->ne.empty() || t->ne[0] != n_in || t->n_elements() != n_in * n_rows)
        fail("tensor " + name + " has an unexpected shape");
    const size_t rb = row_bytes(t->type, n_in);
    std::vector<float> row(static_cast<size_t>(n_in));
    Vec out;
    out.reserve(static_cast<size_t>(n_in * n_rows));
    for (int64_t r = 0; r < n_rows; ++r) {
        quant::dequantize_row(t->type, t->data + static_cast<size_t>(r) * rb, row.data(), n_in);
        out.insert(out.end(), row.begin(), row.end());
    }
    return out;
}

Vec read_vector(const gguf::File& f, const std::string& name, int64_t n, bool required = true) {
    if (!required && !f.find_tensor(name)) return {};
    return read_tensor(f, name, n, 1);
}

// y = W x for one row x.
Vec matvec(const auto& W, const Vec& x) {
    Vec y(static_cast<size_t>(W.n_out));
    for (int o = 0; o < W.n_out; ++o) {
        const double* w = W.row(o);
        double s = 0;
        for (int i = 0; i < W.n_in; ++i) s += w[i] * x[i];
        y[o] = s;
    }
    return y;
}

// x / sqrt(mean(x^2) + eps) * w (w empty or ignored: 1).
Vec rmsnorm(const Vec& x, const Vec& w, double eps, bool use_w) {
    double ss = 0;
    for (double e : x) ss += e * e;
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * (use_w ? w[i] : 1.0);
    return y;
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }
double gelu_tanh(double x) {
    const double k = std::sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

}  // namespace

Oracle::Oracle(const std::string& path) {
    auto fp = gguf::File::open(path);
    const gguf::File& f = *fp;
    const std::string a = f.get_string("general.architecture");
    if (a != "llama" && a != "phi3" && a != "gemma2") fail("architecture " + a + " not covered");
    c_.arch = a;
    c_.n_embd = static_cast<int>(f.get_int(a + ".embedding_length"));
    c_.n_layer = static_cast<int>(f.get_int(a + ".block_count"));
    c_.n_ff = static_cast<int>(f.get_int(a + ".feed_forward_length"));
    c_.n_head = static_cast<int>(f.get_int(a + ".attention.head_count"));
    c_.n_head_kv = static_cast<int>(f.get_int(a + ".attention.head_count_kv", c_.n_head));
    c_.head_dim = static_cast<int>(f.get_int(a + ".attention.key_length", c_.n_embd / c_.n_head));
    c_.n_rot = static_cast<int>(f.get_int(a + ".rope.dimension_count", c_.head_dim));
    c_.n_ctx_train = static_cast<int>(f.get_int(a + ".context_length", 4096));
    c_.eps = f.get_float(a + ".attention.layer_norm_rms_epsilon", 1e-5);
    c_.theta = f.get_float(a + ".rope.freq_base", 10000.0);
    const gguf::TensorInfo* te = f.find_tensor("token_embd.weight");
    if (!te || te->ne.size() < 2) fail("missing token_embd.weight");
    c_.n_vocab = static_cast<int>(te->ne[1]);
    const int d = c_.n_embd, hd = c_.head_dim, qd = c_.n_head * hd, kvd = c_.n_head_kv * hd, L = c_.n_layer;
    c_.window.assign(static_cast<size_t>(L), 0);
    c_.query_scale = 1.0 / std::sqrt(double(hd));
    if (a == "phi3") {
        // Phi-3: halves-paired RoPE, an optional sliding window on every layer.
        c_.neox = true;
        c_.window.assign(static_cast<size_t>(L), static_cast<int>(f.get_int(a + ".attention.sliding_window", 0)));
    } else if (a == "gemma2") {
        // Gemma 2: GELU-tanh, embeddings times sqrt(d), soft-caps (defaults of the
        // released configs), a window on layers 0, 2, 4, ..., and queries scaled by
        // query_pre_attn_scalar^-1/2: head_dim, except d / n_head in the 27B (46 layers).
        c_.neox = c_.gelu = c_.scale_embd = true;
        c_.attn_softcap = f.get_float(a + ".attn_logit_softcapping", 50.0);
        c_.final_softcap = f.get_float(a + ".final_logit_softcapping", 30.0);
        const int w = static_cast<int>(f.get_int(a + ".attention.sliding_window", 4096));
        for (int l = 0; l < L; l += 2) c_.window[l] = w;
        if (L == 46) c_.query_scale = 1.0 / std::sqrt(double(d / c_.n_head));
    }

    auto mat = [&](const std::string& name, int n_in, int n_out, int row0 = 0, int n_rows = -1) {
        Mat m;
        if (n_rows < 0) n_rows = n_out;
        const Vec all = read_tensor(f, name, n_in, n_out);
        m.n_in = n_in;
        m.n_out = n_rows;
        m.w.assign(all.begin() + static_cast<ptrdiff_t>(row0) * n_in,
                   all.begin() + static_cast<ptrdiff_t>(row0 + n_rows) * n_in);
        return m;
    };
    embd_ = mat("token_embd.weight", d, c_.n_vocab);
    out_norm_ = read_vector(f, "output_norm.weight", d);
    c_.tied = f.find_tensor("output.weight") == nullptr;
    head_ = c_.tied ? embd_ : mat("output.weight", d, c_.n_vocab);
    for (int l = 0; l < L; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        Layer y;
        y.attn_norm = read_vector(f, p + "attn_norm.weight", d);
        y.ffn_norm = read_vector(f, p + "ffn_norm.weight", d);
        if (a == "phi3") {  // fused: [q; k; v] rows and [gate; up] rows
            y.wq = mat(p + "attn_qkv.weight", d, qd + 2 * kvd, 0, qd);
            y.wk = mat(p + "attn_qkv.weight", d, qd + 2 * kvd, qd, kvd);
            y.wv = mat(p + "attn_qkv.weight", d, qd + 2 * kvd, qd + kvd, kvd);
            y.gate = mat(p + "ffn_up.weight", d, 2 * c_.n_ff, 0, c_.n_ff);
            y.up = mat(p + "ffn_up.weight", d, 2 * c_.n_ff, c_.n_ff, c_.n_ff);
        } else {
            y.wq = mat(p + "attn_q.weight", d, qd);
            y.wk = mat(p + "attn_k.weight", d, kvd);
            y.wv = mat(p + "attn_v.weight", d, kvd);
            y.gate = mat(p + "ffn_gate.weight", d, c_.n_ff);
            y.up = mat(p + "ffn_up.weight", d, c_.n_ff);
        }
        y.wo = mat(p + "attn_output.weight", qd, d);
        y.down = mat(p + "ffn_down.weight", c_.n_ff, d);
        if (a == "gemma2") {
            y.post_attn_norm = read_vector(f, p + "post_attention_norm.weight", d);
            y.post_ffn_norm = read_vector(f, p + "post_ffw_norm.weight", d);
        }
        layers_.push_back(std::move(y));
    }
    const int half = c_.n_rot / 2;
    if (a == "llama") rope_freqs_ = read_vector(f, "rope_freqs.weight", half, false);  // Llama 3.1+
    if (a == "phi3") {
        // LongRoPE: per-frequency divisors, long ones past the original context, and
        // cos/sin scaled by the attention factor (metadata, or derived from the
        // context extension ratio s: sqrt(1 + ln s / ln original), 1 when s <= 1).
        factors_long_ = read_vector(f, "rope_factors_long.weight", half, false);
        factors_short_ = read_vector(f, "rope_factors_short.weight", half, false);
        c_.n_ctx_orig = static_cast<int>(f.get_int(a + ".rope.scaling.original_context_length", c_.n_ctx_train));
        if (!factors_long_.empty() || !factors_short_.empty()) {
            c_.attn_factor = f.get_float(a + ".rope.scaling.attn_factor", 0.0);
            if (c_.attn_factor <= 0) {
                const double s = double(c_.n_ctx_train) / c_.n_ctx_orig;
                c_.attn_factor = s <= 1 ? 1.0 : std::sqrt(1.0 + std::log(s) / std::log(double(c_.n_ctx_orig)));
            }
        }
    }
}

std::vector<std::vector<double>> Oracle::logits(std::span<const int32_t> tokens, int n_ctx, int pos0,
                                                const Ablation& off) const {
    const Config& c = c_;
    const int T = static_cast<int>(tokens.size()), d = c.n_embd, hd = c.head_dim, half = c.n_rot / 2;
    const int group = c.n_head / c.n_head_kv;
    const bool use_w = !off.norm_weights;

    // Rotation angle divisors and cos/sin scale.
    const std::vector<double>* ff = nullptr;
    if (!rope_freqs_.empty()) ff = &rope_freqs_;
    if (c.arch == "phi3") {
        const auto& chosen = n_ctx > c.n_ctx_orig ? factors_long_ : factors_short_;
        if (!chosen.empty()) ff = &chosen;
    }
    if (off.rope_factors) ff = nullptr;
    const double mscale = off.attn_factor ? 1.0 : c.attn_factor;
    const bool neox = c.neox != off.rope_mode;
    // Rotates the first n_rot dims of one head at position pos.
    auto rope = [&](double* v, int pos) {
        for (int i = 0; i < half; ++i) {
            double freq = std::pow(c.theta, -2.0 * i / c.n_rot);
            if (ff) freq /= (*ff)[i];
            const double ang = double(pos) * freq, cs = std::cos(ang) * mscale, sn = std::sin(ang) * mscale;
            const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            const double x0 = v[i0], x1 = v[i1];
            v[i0] = x0 * cs - x1 * sn;
            v[i1] = x0 * sn + x1 * cs;
        }
    };

    std::vector<Vec> x(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) {
        const int32_t tok = tokens[t];
        if (tok < 0 || tok >= c.n_vocab) fail("token id out of range");
        x[t].assign(embd_.row(tok), embd_.row(tok) + d);
        if (c.scale_embd && !off.embed_scale)
            for (double& e : x[t]) e *= std::sqrt(double(d));
    }

    for (int l = 0; l < c.n_layer; ++l) {
        const Layer& Ly = layers_[l];
        const int window = off.window ? 0 : c.window[l];
        // Keys and values of every position (the exact "cache").
        std::vector<Vec> q(T), k(T), v(T);
        for (int t = 0; t < T; ++t) {
            const Vec xn = rmsnorm(x[t], Ly.attn_norm, c.eps, use_w);
            q[t] = matvec(Ly.wq, xn);
            k[t] = matvec(Ly.wk, xn);
            v[t] = matvec(Ly.wv, xn);
            for (int h = 0; h < c.n_head; ++h) rope(&q[t][size_t(h) * hd], pos0 + t);
            for (int h = 0; h < c.n_head_kv; ++h) rope(&k[t][size_t(h) * hd], pos0 + t);
        }
        for (int t = 0; t < T; ++t) {
            Vec att(static_cast<size_t>(c.n_head) * hd, 0.0);
            const int first = window > 0 ? std::max(0, t - window + 1) : 0;  // keys at p > t - window
            for (int h = 0; h < c.n_head; ++h) {
                const int kh = h / group;
                const double* qh = &q[t][size_t(h) * hd];
                Vec s;
                double mx = -INFINITY;
                for (int j = first; j <= t; ++j) {
                    const double* kj = &k[j][size_t(kh) * hd];
                    double dot = 0;
                    for (int i = 0; i < hd; ++i) dot += qh[i] * kj[i];
                    dot *= c.query_scale;
                    if (c.attn_softcap > 0 && !off.attn_softcap) dot = c.attn_softcap * std::tanh(dot / c.attn_softcap);
                    s.push_back(dot);
                    mx = std::max(mx, dot);
                }
                double sum = 0;
                for (double& e : s) sum += (e = std::exp(e - mx));
                for (int j = first; j <= t; ++j) {
                    const double p = s[size_t(j - first)] / sum;
                    const double* vj = &v[j][size_t(kh) * hd];
                    for (int i = 0; i < hd; ++i) att[size_t(h) * hd + i] += p * vj[i];
                }
            }
            Vec y = matvec(Ly.wo, att);
            if (!Ly.post_attn_norm.empty() && !off.post_norms) y = rmsnorm(y, Ly.post_attn_norm, c.eps, use_w);
            for (int i = 0; i < d; ++i) x[t][i] += y[i];
        }
        for (int t = 0; t < T; ++t) {
            const Vec xn = rmsnorm(x[t], Ly.ffn_norm, c.eps, use_w);
            const Vec g = matvec(Ly.gate, xn), u = matvec(Ly.up, xn);
            Vec h(g.size());
            for (size_t i = 0; i < g.size(); ++i) h[i] = (c.gelu ? gelu_tanh(g[i]) : silu(g[i])) * u[i];
            Vec y = matvec(Ly.down, h);
            if (!Ly.post_ffn_norm.empty() && !off.post_norms) y = rmsnorm(y, Ly.post_ffn_norm, c.eps, use_w);
            for (int i = 0; i < d; ++i) x[t][i] += y[i];
        }
    }

    std::vector<Vec> out(static_cast<size_t>(T));
    for (int t = 0; t < T; ++t) {
        out[t] = matvec(head_, rmsnorm(x[t], out_norm_, c.eps, use_w));
        if (c.final_softcap > 0 && !off.final_softcap)
            for (double& e : out[t]) e = c.final_softcap * std::tanh(e / c.final_softcap);
    }
    return out;
}

}  // namespace loom::oracle
