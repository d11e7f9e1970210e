// Continuous batching: one engine thread owns a Context and serves every request.
//
// Requests are submitted from any thread and queued (first come, first served).
// Every step():
//   * each running sequence that is generating advances by one token;
//   * waiting prompts are encoded in chunks within the step's token budget
//     (batch_tokens, counting the generating tokens first), so a long new prompt
//     never stalls the running streams for more than one bounded step;
//   * finished and cancelled sequences leave at once and free their KV cells.
// All users share one KV pool (the Context's n_ctx cells): any request may use up to
// n_ctx cells while cells are free. A prompt's longest prefix already in the cache
// (a system prompt, an earlier chat turn, the other choices of one request) is
// shared, not encoded again: cells are reference-counted (KvCache::fork), found by
// a hash of the prompt's blocks of kPrefixBlock tokens; the n choices of a request
// take the first's cells and the logits of its last prompt token. Finished sequences stay
// cached for reuse until their cells or sequence ids are needed (least recently used
// first). When the pool runs out mid-generation, the youngest running sequence is
// preempted: its cells are freed and it is encoded again later, from where it was.
//
// Determinism: every kernel is batch-invariant, so a request's tokens and logits are
// bit-identical whether it runs alone, next to others, after a preemption or on a
// prefix-cache hit (tests/runtime/scheduler_*_test.cpp check exactly that).
//
// No HTTP here: the server (src/server) maps Busy to 503 + Retry-After and the
// callbacks to its streams.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "runtime/context.h"
#include "runtime/sampler.h"

namespace loom {

class Tokenizer;

// submit() when the waiting queue is full (HTTP: 503 with Retry-After).
struct Busy : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class FinishReason {
    Stop,       // an end token or a stop string
    Length,     // max_tokens generated, or the context (n_ctx) is full
    Cancelled,  // cancel(), a callback returned Control::Cancel, or the scheduler was destroyed
    Error,      // RequestResult::error says why
};
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

enum class Control { Continue, Cancel };

struct TokenLogprob {
    int32_t token = 0;
    float logprob = 0;  // natural log of the probability under the model's raw logits
};

// One generated token, as the per-token callback sees it (on the engine thread).
// Views are valid during the call only.
struct TokenEvent {
    int choice = 0;               // 0 .. n-1
    int index = 0;                // 0-based number of this token within its choice
    int32_t token = 0;
    // Text this token releases: may be empty (half a UTF-8 character, or text held
    // back because it may be the start of a stop string) and may include text of
    // earlier tokens released now. The concatenation of a choice's pieces is its
    // text, without the stop string and without end tokens.
    std::string_view text;
    float logprob = 0;            // of `token` under the raw logits (log-softmax); 0 unless Request::logprobs or n_probs
    std::span<const TokenLogprob> top;  // the n_probs likeliest tokens, best first (empty if n_probs = 0)
    std::span<const float> logits;      // the raw logits row the token was sampled from
};

// One choice's outcome.
struct ChoiceResult {
    FinishReason finish = FinishReason::Stop;
    std::vector<int32_t> tokens;  // generated tokens (an end token that stopped it included)
    std::string text;             // released text (see TokenEvent::text)
};

// A finished request, given to on_done exactly once (on the engine thread, or in the
// thread that destroys the scheduler).
struct RequestResult {
    uint64_t id = 0;
    std::vector<ChoiceResult> choices;  // n entries
    FinishReason finish = FinishReason::Stop;  // choice 0's (convenience)
    std::string error;            // with FinishReason::Error: one line
    int prompt_tokens = 0;        // tokens of the prompt
    int cached_tokens = 0;        // of them, found in the prefix cache (not encoded), first choice
    int generated_tokens = 0;     // over all choices
    double queue_s = 0;           // submit -> admitted (first time)
    double prompt_s = 0;          // admitted -> first token sampled (time to first token = queue_s + prompt_s)
    double generation_s = 0;      // first token -> finished
};

struct Request {
    std::vector<int32_t> prompt;  // token ids (BOS included when wanted); at least one
    SamplerParams sampling;       // choice i samples with seed sampling.seed + i
    // Most tokens to generate per choice; -1 = until a stop, or the context is full;
    // 0 = encode the prompt only (it stays in the prefix cache).
    // prompt + max_tokens must fit in n_ctx (else submit throws naming both numbers).
    int max_tokens = -1;
    bool stop_at_eog = true;            // the tokenizer's end-of-generation tokens stop (needs a tokenizer)
    std::vector<int32_t> stop_tokens;   // more token ids that stop a choice
    std::vector<std::string> stop;      // stop strings (need a tokenizer); not part of the text
    int n = 1;                          // choices; they share the prompt's cells
    bool logprobs = false;              // TokenEvent::logprob of each token (also with n_probs > 0)
    int n_probs = 0;                    // top logprobs per token (0 = none)
    // Per generated token, engine thread; return Control::Cancel to end the whole
    // request (finish reason Cancelled). An end token that stops a choice is not passed.
    std::function<Control(const TokenEvent&)> on_token;
    std::function<void(const RequestResult&)> on_done;
};

struct SchedulerParams {
    int n_parallel = 4;        // --parallel: most running sequences (each choice counts)
    int batch_tokens = 512;    // --batch-tokens: most tokens per step (generating + prompt chunks)
    int max_waiting = 64;      // waiting requests beyond which submit() throws Busy
    bool prefix_cache = true;  // share cached prompt prefixes and a request's prompt between
                               // its n choices (off: every prompt is encoded, per choice)
    // Steps that encode prompt chunks carry no generating tokens: running sequences wait
    // until the prompts now running are in (more prompt throughput, later next tokens;
    // loom bench's prompt phase). Off (the default): they advance every step.
    bool prompts_first = false;
    // Seconds on a monotonic clock, for the requests' times (RequestResult); empty =
    // std::chrono::steady_clock. Tests give a fake one.
    std::function<double()> clock;
};

struct SchedulerStats {
    int running = 0;              // sequences admitted and not finished
    int waiting = 0;              // sequences queued (new or preempted)
    int cached = 0;               // finished sequences kept for prefix reuse
    int kv_cells = 0, kv_used = 0;  // cells of the pool; in use (running and cached)
    double kv_usage = 0;          // kv_used / kv_cells
    uint64_t steps = 0;           // decode steps run
    uint64_t prompt_tokens = 0;   // prompt tokens encoded (prefix hits excluded, re-encoding included)
    uint64_t generated_tokens = 0;
    uint64_t prefix_queries = 0;  // prompts looked up in the prefix cache
    uint64_t prefix_hit_tokens = 0;  // prompt tokens found there (not encoded)
    uint64_t preemptions = 0;
    uint64_t requests_done = 0;
    int last_step_tokens = 0;     // tokens in the last step (at most batch_tokens)
    int max_step_tokens = 0;      // most tokens in any step so far
};

class Scheduler {
public:
    static constexpr int kPrefixBlock = 64;  // tokens per hashed prompt block

    // Owns a Context on `model` (its n_seq_max sequence ids are shared by running
    // and cached sequences and must be at least n_parallel). tok: detokenizes text
    // pieces and stop strings and gives the end-of-generation tokens; may be null
    // (then text is empty, stop strings are refused, stop_at_eog does nothing).
    // Throws std::invalid_argument on bad parameters.
    Scheduler(const Model& model, const ContextParams& cp, const SchedulerParams& sp = {},
              const Tokenizer* tok = nullptr);
    // On a decoder of the caller's (a Context, or a fake in tests), which must outlive
    // the scheduler and be used by nothing else meanwhile; its sequence ids must be at
    // least n_parallel.
    Scheduler(BatchDecoder& dec, const SchedulerParams& sp = {}, const Tokenizer* tok = nullptr);
    ~Scheduler();  // stops the engine thread; unfinished requests end Cancelled
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Any thread. Returns the request's id. Throws Busy when the waiting queue is
    // full, std::invalid_argument for a bad request (empty prompt, token outside the
    // vocabulary, prompt + max_tokens over n_ctx, n over n_parallel, ...).
    uint64_t submit(Request r);
    // Any thread: ends the request at the next step (finish reason Cancelled, cells
    // freed then). Returns false when it is unknown or already finished.
    bool cancel(uint64_t id);

    // The engine thread: runs steps while there is work, sleeps otherwise.
    void start();
    void stop();  // after the current step; queued requests stay (step() or start() go on)
    bool running() const { return thread_.joinable(); }

    // One step in the calling thread (tests, or callers without an engine thread;
    // not while the engine thread runs). Returns false when there was nothing to do.
    bool step();
    // Submits and waits for the result: runs steps here when the engine thread is not
    // running. Busy / invalid_argument as submit().
    RequestResult generate(Request r);

    SchedulerStats stats() const;  // any thread
    // Lets go of every cached (finished) sequence's cells. Not while the engine thread runs.
    void clear_prefix_cache();
    const BatchDecoder& decoder() const { return dec_; }  // engine thread / between steps only
    const SchedulerParams& params() const { return params_; }

private:
    struct Seq;
    struct Req;
    struct Impl;

    void drain_inbox();
    void reap_cancelled();
    void admit();
    void preempt(Seq* s);
    std::vector<Seq*> share_prompt(Seq* s);
    void sample(Seq* s, std::span<const float> logits);
    void flush_text(Seq& s);
    void finish_seq(Seq* s, FinishReason why, bool keep_cells);
    void sweep();
    void publish_stats(int step_tokens);
    void check_params();
    void engine_loop();
    double now() const;

    std::unique_ptr<Context> own_ctx_;  // when the scheduler made its Context
    BatchDecoder& dec_;
    SchedulerParams params_;
    const Tokenizer* tok_;
    std::unique_ptr<Impl> impl_;  // sequences, queue, KV slots and prefix index (engine thread)

    mutable std::mutex mu_;        // guards what follows
    std::condition_variable cv_;
    std::deque<std::unique_ptr<Req>> inbox_;  // submitted, not yet seen by the engine
    std::vector<uint64_t> cancels_;
    std::unordered_set<uint64_t> live_;       // submitted and not finished
    SchedulerStats stats_;
    int n_queued_ = 0;             // requests submitted and not yet admitted
    uint64_t next_id_ = 1;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace loom
