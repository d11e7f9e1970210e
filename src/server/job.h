// One API request in flight: the engine's callbacks (engine thread) queue each
// choice's text, logprobs and end for the HTTP thread that answers the request.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/api.h"
#include "server/engine.h"
#include "tokenizer/tokenizer.h"

namespace loom::server {

struct LogprobEntry {
    std::string piece;
    float logprob = 0;
    std::vector<std::pair<std::string, float>> top;
};

// What the HTTP thread receives, in order, per choice.
struct JobEvent {
    int choice = 0;
    std::string text;                  // may be empty
    std::vector<LogprobEntry> logprobs;
    bool done = false;                 // the choice's last event
    std::string finish_reason;         // with done: "stop", "length", "abort", "error"
    std::string error;
};

struct ChoiceSummary {
    std::string finish_reason;
    int n_gen = 0;                     // tokens the choice generated
    ChoiceDone done;
    double t_first = 0;   // steady seconds of the first token (0: none)
};

class Job {
public:
    Job(const Tokenizer& tok, const ApiRequest& req, double t_arrival);

    // Engine thread.
    bool on_token(const TokenOut& t);
    void on_done(const ChoiceDone& d);

    // HTTP thread: waits up to timeout_s for events; returns them (empty on timeout).
    std::vector<JobEvent> wait(double timeout_s);
    bool all_done() const;
    void cancel() { cancelled_ = true; }
    bool cancelled() const { return cancelled_; }
    // The request ran past its deadline: no more tokens are taken, and choices the
    // engine ends as cancelled end with finish_reason "length".
    void time_out() { timed_out_ = true; }
    bool timed_out() const { return timed_out_; }
    const std::vector<ChoiceSummary>& summaries() const { return sum_; }  // once all_done()
    double t_arrival() const { return t_arrival_; }

    uint64_t engine_id = 0;
    std::function<void(const Job&)> on_complete;   // engine thread, after the last choice ended

private:
    struct Choice {
        int n_gen = 0;
        bool finished = false;
        double t_last = 0;
    };
    const Tokenizer& tok_;
    bool want_logprobs_;
    double t_arrival_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::deque<JobEvent> events_;
    std::vector<Choice> ch_;
    std::vector<ChoiceSummary> sum_;
    int n_done_ = 0;
    std::atomic<bool> cancelled_{false}, timed_out_{false};

public:
    // Latency observations for the metrics, filled on the engine thread.
    std::vector<double> itl;   // guarded by m_; read after all_done()
};

}  // namespace loom::server
