// The scheduler's private state, shared by scheduler.cpp and scheduler_sample.cpp.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "runtime/prefix_index.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace loom {

struct Scheduler::Req {
    uint64_t id = 0;
    Request r;
    RequestResult res;
    std::vector<int32_t> stop_ids;  // sorted
    int n_open = 0;                 // choices not finished
    bool cancelled = false, admitted = false;
    double t_submit = 0, t_admit = 0, t_first = -1;
};

// One choice of a request: its tokens (prompt, then generated) and where they are.
struct Scheduler::Seq {
    Req* req = nullptr;
    int choice = 0;
    uint64_t age = 0;          // arrival order: older sequences go first
    int32_t slot = -1;         // KV sequence id while placed
    std::vector<int32_t> tokens;
    int n_prompt = 0;
    int n_cached = 0;          // tokens[0, n_cached) have keys and values in the cache
    Sampler sampler;
    std::unique_ptr<StreamDecoder> detok;
    std::string held;          // text not released yet (a stop string may start in it)
    bool done = false;
    int pending() const { return static_cast<int>(tokens.size()) - n_cached; }
    int n_generated() const { return static_cast<int>(tokens.size()) - n_prompt; }
    explicit Seq(const SamplerParams& sp) : sampler(sp) {}
};

struct Scheduler::Impl {
    explicit Impl(BatchDecoder& dec) : slots(dec) {}
    PrefixIndex slots;
    std::vector<std::unique_ptr<Req>> reqs;
    std::vector<std::unique_ptr<Seq>> seqs;  // every unfinished sequence
    std::deque<Seq*> waiting;                // by age
    std::vector<Seq*> running;               // by age
    SchedulerStats st;                       // counters, published to stats_ after each step
};

}  // namespace loom
