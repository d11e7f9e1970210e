// The scheduler's sampling step: the next token of a sequence, its logprobs, the
// text it releases (held back while it may start a stop string), and its end.
#include <algorithm>
#include <cmath>

#include "runtime/scheduler_impl.h"

namespace loom {

void Scheduler::flush_text(Seq& s) {
    if (s.detok) s.held += s.detok->flush();
    s.req->res.choices[s.choice].text += s.held;
    s.held.clear();
}

void Scheduler::sample(Seq* s, std::span<const float> logits) {
    Impl& m = *impl_;
    Req& q = *s->req;
    if (q.t_first < 0) q.t_first = now();
    if (q.r.max_tokens == 0) {  // the prompt only
        finish_seq(s, FinishReason::Length, true);
        return;
    }
    const int32_t tok = s->sampler.sample(logits);
    s->tokens.push_back(tok);
    ++m.st.generated_tokens;
    ChoiceResult& cr = q.res.choices[s->choice];
    if (std::binary_search(q.stop_ids.begin(), q.stop_ids.end(), tok)) {
        flush_text(*s);
        finish_seq(s, FinishReason::Stop, true);
        return;
    }
    const int n_gen = s->n_generated();
    const bool at_limit = (q.r.max_tokens > 0 && n_gen >= q.r.max_tokens) ||
                          static_cast<int>(s->tokens.size()) >= dec_.n_ctx();
    // Text: release what cannot be the start of a stop string.
    std::string piece;
    bool stopped = false;
    if (s->detok) {
        s->held += s->detok->push(tok);
        size_t cut = std::string::npos;
        for (const std::string& st : q.r.stop) cut = std::min(cut, s->held.find(st));
        if (cut != std::string::npos) {
            piece = s->held.substr(0, cut);
            s->held.clear();
            stopped = true;
        } else if (at_limit) {
            s->held += s->detok->flush();
            piece.swap(s->held);
        } else {
            size_t keep = 0;  // longest tail of held that starts a stop string
            for (const std::string& st : q.r.stop)
                for (size_t k = std::min(st.size() - 1, s->held.size()); k > keep; --k)
                    if (s->held.compare(s->held.size() - k, k, st, 0, k) == 0) {
                        keep = k;
                        break;
                    }
            piece = s->held.substr(0, s->held.size() - keep);
            s->held.erase(0, s->held.size() - keep);
        }
        cr.text += piece;
    }
    if (q.r.on_token) {
        TokenEvent ev;
        ev.choice = s->choice;
        ev.index = n_gen - 1;
        ev.token = tok;
        ev.text = piece;
        ev.logits = logits;
        // log-softmax of the raw logits, when asked (a pass of exp over the vocabulary:
        // several times the cost of sampling greedily)
        float lse = 0;
        if (q.r.logprobs || q.r.n_probs > 0) {
            float mx = logits[0];
            for (float l : logits) mx = std::max(mx, l);
            double sum = 0;
            for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
            lse = mx + static_cast<float>(std::log(sum));
            ev.logprob = logits[tok] - lse;
        }
        std::vector<TokenLogprob> top;
        if (q.r.n_probs > 0) {
            std::vector<int32_t> idx(logits.size());
            for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
            const size_t k = std::min(idx.size(), static_cast<size_t>(q.r.n_probs));
            std::partial_sort(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(k), idx.end(), [&](int32_t a, int32_t b) {
                return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
            });
            for (size_t i = 0; i < k; ++i) top.push_back({idx[i], logits[idx[i]] - lse});
        }
        ev.top = top;
        if (q.r.on_token(ev) == Control::Cancel) q.cancelled = true;
    }
    if (q.cancelled) return;  // reaped at the end of the step
    if (stopped) finish_seq(s, FinishReason::Stop, true);
    else if (at_limit) finish_seq(s, FinishReason::Length, true);
}

}  // namespace loom
