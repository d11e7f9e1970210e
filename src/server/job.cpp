#include "server/job.h"

#include <algorithm>
#include <chrono>

namespace loom::server {

Job::Job(const Tokenizer& tok, const ApiRequest& req, double t_arrival)
    : tok_(tok), want_logprobs_(req.logprobs), t_arrival_(t_arrival), sum_(static_cast<size_t>(req.n)) {
    ch_.resize(static_cast<size_t>(req.n));
}

bool Job::on_token(const TokenOut& t) {
    std::lock_guard lk(m_);
    if (t.choice < 0 || t.choice >= static_cast<int>(ch_.size())) return false;
    Choice& c = ch_[static_cast<size_t>(t.choice)];
    if (cancelled_ || timed_out_) return false;
    if (c.finished) return true;
    c.n_gen++;
    if (c.n_gen == 1) sum_[static_cast<size_t>(t.choice)].t_first = t.t;
    else itl.push_back(t.t - c.t_last);
    c.t_last = t.t;
    JobEvent ev;
    ev.choice = t.choice;
    ev.text = t.text;
    if (want_logprobs_) {
        LogprobEntry e{tok_.token_to_piece(t.token), t.logprob, {}};
        for (const auto& p : t.top) e.top.emplace_back(tok_.token_to_piece(p.token), p.logprob);
        ev.logprobs.push_back(std::move(e));
    }
    if (!ev.text.empty() || !ev.logprobs.empty()) {
        events_.push_back(std::move(ev));
        cv_.notify_all();
    }
    return true;
}

void Job::on_done(const ChoiceDone& d) {
    std::lock_guard lk(m_);
    if (d.choice < 0 || d.choice >= static_cast<int>(ch_.size())) return;
    Choice& c = ch_[static_cast<size_t>(d.choice)];
    JobEvent ev;
    ev.choice = d.choice;
    ev.done = true;
    std::string reason = d.finish_reason;
    if (reason == "cancelled") reason = timed_out_ && !cancelled_ ? "length" : "abort";
    if (reason == "error") ev.error = d.error.empty() ? "generation failed" : d.error;
    ev.finish_reason = reason;
    c.finished = true;
    ChoiceSummary& s = sum_[static_cast<size_t>(d.choice)];
    s.finish_reason = reason;
    s.n_gen = std::max(c.n_gen, d.n_gen);
    s.done = d;
    n_done_++;
    // Metrics before the HTTP thread can answer: a client that reads /metrics right
    // after its response sees its request counted.
    if (n_done_ == static_cast<int>(ch_.size()) && on_complete) on_complete(*this);
    events_.push_back(std::move(ev));
    cv_.notify_all();
}

std::vector<JobEvent> Job::wait(double timeout_s) {
    std::unique_lock lk(m_);
    cv_.wait_for(lk, std::chrono::duration<double>(timeout_s), [&] { return !events_.empty(); });
    std::vector<JobEvent> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
    events_.clear();
    return out;
}

bool Job::all_done() const {
    std::lock_guard lk(m_);
    return n_done_ == static_cast<int>(ch_.size());
}

}  // namespace loom::server
