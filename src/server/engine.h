// What the HTTP server needs from the engine: submit a generation, hear each
// token and the end, cancel, read a stats snapshot. The scheduler adapter
// (engine_scheduler.cpp) is the real one; tests use fakes.
//
// Callbacks run on the engine's thread: they must only hand data over (the
// server queues it for the HTTP thread that owns the request) and return at once.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/sampler.h"

namespace loom {
class Tokenizer;
}

namespace loom::server {

struct TokenProb {
    int32_t token = 0;
    float logprob = 0;
};

// One generated token of one choice. The engine turns tokens into text: `text`
// is what this token releases (UTF-8 held back until complete, stop strings and
// end tokens left out), so a choice's pieces concatenate to its whole text.
struct TokenOut {
    int choice = 0;
    int32_t token = 0;
    std::string text;
    float logprob = 0;               // of the sampled token (when logprobs were asked)
    std::vector<TokenProb> top;      // the n_probs most likely, best first
    double t = 0;                    // steady seconds when it was produced
};

// The end of one choice.
struct ChoiceDone {
    int choice = 0;
    std::string finish_reason;       // "stop" (end token or stop string), "length", "cancelled", "error"
    std::string error;               // with finish_reason "error"
    int n_prompt = 0;                // prompt tokens
    int n_cached = 0;                // of those, found in the prefix cache
    int n_gen = 0;                   // tokens generated
    double queue_s = 0;              // submit -> first scheduled
    double prompt_ms = 0, gen_ms = 0;
    double t = 0;                    // steady seconds
};

struct GenParams {
    std::vector<int32_t> prompt;
    SamplerParams sampling;
    float presence_penalty = 0, frequency_penalty = 0;
    int max_tokens = 16;
    std::vector<std::string> stop;   // stop strings (not part of the text); end tokens always stop
    int n = 1;                       // choices; they share the prompt's cells
    int n_probs = 0;                 // top alternatives per token (0: none)
    bool logprobs = false;           // logprob of each sampled token
    bool ignore_eos = false;         // end tokens do not stop (benchmarks)
};

struct GenCallbacks {
    // Returns false to cancel the request (the client is gone).
    std::function<bool(const TokenOut&)> on_token;
    std::function<void(const ChoiceDone&)> on_done;   // exactly once per choice
};

// submit() when the queue is full.
struct EngineBusy : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct EngineStats {
    int running = 0, waiting = 0;
    double kv_usage = 0;             // 0..1
    uint64_t preemptions = 0;
    uint64_t steps = 0;              // engine steps (decode calls) so far
    uint64_t prefix_queries = 0, prefix_hits = 0;  // tokens looked up / found in the prefix cache
    bool have_prefix_stats = false;  // false: the server counts them from ChoiceDone
};

class Engine {
public:
    virtual ~Engine() = default;
    // Queues a generation; throws EngineBusy when the queue is full and
    // std::invalid_argument for a request the engine cannot take.
    virtual uint64_t submit(GenParams params, GenCallbacks cb) = 0;
    virtual void cancel(uint64_t id) = 0;
    virtual EngineStats stats() const = 0;
    virtual int n_ctx() const = 0;   // most tokens (prompt + generated) one sequence may hold
};

}  // namespace loom::server
