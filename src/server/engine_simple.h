// A plain continuous-batching Engine straight on a Context, for `loom serve`
// until the scheduler (src/runtime/scheduler.h) runs: one engine thread; every
// step decodes one token for each generating sequence, then fills the rest of
// the token budget with prompt chunks (first come, first served). A request is
// admitted when its choices find free sequence slots and the free KV cells hold
// their prompts plus up to 256 generated tokens each beyond what the running
// choices may still take; a longer generation that finds the pool full ends
// "length" (no preemption). No prefix cache: each choice encodes its prompt.
#pragma once
#include <memory>

#include "runtime/context.h"
#include "server/engine.h"

namespace loom {
class Tokenizer;
}

namespace loom::server {

struct SimpleEngineParams {
    int n_parallel = 8;      // sequences generating at once (each choice counts)
    int batch_tokens = 512;  // tokens per step
    int max_waiting = 64;    // queued requests beyond which submit() throws EngineBusy
};

// ContextParams::n_seq_max must be >= n_parallel. The engine thread starts at once.
std::unique_ptr<Engine> make_simple_engine(const Model& model, const ContextParams& cp, const SimpleEngineParams& sp,
                                           const Tokenizer& tok);

}  // namespace loom::server
