// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition / presence /
// frequency penalties,
// with a seeded RNG (same seed, same output).
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace loom {

struct SamplerParams {
    float temperature = 0.8f;   // <= 0: greedy
    int top_k = 40;             // <= 0: off
    float top_p = 0.95f;        // >= 1: off
    float min_p = 0.05f;        // <= 0: off
    float repeat_penalty = 1.0f;  // 1: off
    float presence_penalty = 0.0f;   // OpenAI's: logit -= p for a token seen in the last repeat_last_n (0: off)
    float frequency_penalty = 0.0f;  // OpenAI's: logit -= f * its count there (0: off)
    int repeat_last_n = 64;          // tokens the three penalties look at
    uint64_t seed = 0xC0FFEE;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& p = {});
    int32_t sample(std::span<const float> logits);  // also records the token
    void accept(int32_t token);                      // record a prompt/forced token
    void reset();
    const SamplerParams& params() const { return p_; }

private:
    SamplerParams p_;
    std::mt19937_64 rng_;
    std::deque<int32_t> recent_;
    std::vector<std::pair<float, int32_t>> cand_;
};

int32_t argmax(std::span<const float> logits);

}  // namespace loom
