// Llama (Llama 2, Llama 3, 3.1, 3.2): RMSNorm, RoPE (adjacent pairs, optional
// per-frequency factors rope_freqs.weight), grouped-query attention, SwiGLU FFN,
// tied or separate head.
#include "model/decoder.h"

namespace loom {
namespace {

class Llama final : public DecoderModel {
public:
    Llama(std::unique_ptr<gguf::File> f, const LoadOptions& o) : DecoderModel(std::move(f), o) {
        read_common_hparams();
        const Hparams& h = hp_;
        load_embeddings_and_head();
        for (int i = 0; i < h.n_layer; ++i) add_layer(i, 0, has_layer(i) ? load_layer(i) : DecoderLayer{});
        rope_freqs_ = vector("rope_freqs.weight", h.n_rot / 2, /*required=*/false);  // Llama 3.1+
    }

private:
    const float* rope_factors(const BatchPlan&) const override {
        return rope_freqs_.empty() ? nullptr : rope_freqs_.data();
    }
    std::vector<float> rope_freqs_;
};

}  // namespace

std::unique_ptr<Model> create_llama(std::unique_ptr<gguf::File> f, const LoadOptions& o) {
    return std::make_unique<Llama>(std::move(f), o);
}

}  // namespace loom
