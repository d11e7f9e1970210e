#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

namespace loom {

// The largest value first, in 16 independent lanes (a running maximum in one register
// waits on itself every element: 128256 logits took ~190 us), then its first index.
int32_t argmax(std::span<const float> logits) {
    typedef float v4 __attribute__((vector_size(16)));
    const size_t n = logits.size();
    const float* l = logits.data();
    if (n == 0) return 0;
    float best = l[0];
    size_t i = 0;
    if (n >= 16) {
        v4 m[4], x[4];
        for (v4& v : m) std::memcpy(&v, l, sizeof v);
        for (; i + 16 <= n; i += 16) {
            std::memcpy(x, l + i, sizeof x);
            for (int k = 0; k < 4; ++k) m[k] = x[k] > m[k] ? x[k] : m[k];
        }
        m[0] = m[1] > m[0] ? m[1] : m[0];
        m[2] = m[3] > m[2] ? m[3] : m[2];
        m[0] = m[2] > m[0] ? m[2] : m[0];
        for (int k = 0; k < 4; ++k) best = m[0][k] > best ? m[0][k] : best;
    }
    for (; i < n; ++i) best = l[i] > best ? l[i] : best;
    for (size_t j = 0; j < n; ++j)
        if (l[j] == best) return static_cast<int32_t>(j);
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());  // NaNs
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}

void Sampler::reset() {
    rng_.seed(p_.seed);
    recent_.clear();
}

void Sampler::accept(int32_t token) {
    if (p_.repeat_last_n <= 0) return;
    recent_.push_back(token);
    while (static_cast<int>(recent_.size()) > p_.repeat_last_n) recent_.pop_front();
}

int32_t Sampler::sample(std::span<const float> logits) {
    const bool pres_freq = p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f;
    const bool penalize = (p_.repeat_penalty != 1.0f || pres_freq) && !recent_.empty();
    if (p_.temperature <= 0.0f && !penalize) {  // plain greedy: the first best, read in place
        const int32_t chosen = argmax(logits);
        accept(chosen);
        return chosen;
    }
    cand_.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) cand_[i] = {logits[i], static_cast<int32_t>(i)};
    // Repetition penalty (as in CTRL): divide positive logits, multiply negative ones;
    // then OpenAI's presence and frequency penalties, subtracted.
    if (penalize) {
        std::unordered_map<int32_t, int> seen;
        for (int32_t t : recent_) ++seen[t];
        for (const auto& [t, count] : seen) {
            if (t < 0 || static_cast<size_t>(t) >= cand_.size()) continue;
            float& l = cand_[t].first;
            if (p_.repeat_penalty != 1.0f) l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
            if (pres_freq) l -= p_.presence_penalty + p_.frequency_penalty * static_cast<float>(count);
        }
    }
    int32_t chosen;
    auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    if (p_.temperature <= 0.0f) {
        chosen = std::min_element(cand_.begin(), cand_.end(), by_logit)->second;
    } else {
        size_t n = cand_.size();
        if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
            std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
            n = p_.top_k;
        } else {
            std::sort(cand_.begin(), cand_.end(), by_logit);
        }
        // Softmax with temperature over the n best.
        const float mx = cand_[0].first;
        std::vector<double> prob(n);
        double sum = 0;
        for (size_t i = 0; i < n; ++i) sum += prob[i] = std::exp((cand_[i].first - mx) / p_.temperature);
        for (auto& q : prob) q /= sum;
        // min-p: drop tokens below min_p * best probability.
        if (p_.min_p > 0.0f) {
            size_t keep = 1;
            while (keep < n && prob[keep] >= p_.min_p * prob[0]) ++keep;
            n = keep;
        }
        // top-p: smallest prefix whose mass reaches top_p.
        if (p_.top_p < 1.0f) {
            double cum = 0;
            size_t keep = 0;
            while (keep < n) {
                cum += prob[keep++];
                if (cum >= p_.top_p) break;
            }
            n = std::max<size_t>(1, keep);
        }
        double total = 0;
        for (size_t i = 0; i < n; ++i) total += prob[i];
        std::uniform_real_distribution<double> dist(0.0, total);
        double r = dist(rng_), acc = 0;
        chosen = cand_[n - 1].second;
        for (size_t i = 0; i < n; ++i) {
            acc += prob[i];
            if (r < acc) {
                chosen = cand_[i].second;
                break;
            }
        }
    }
    accept(chosen);
    return chosen;
}

}  // namespace loom
