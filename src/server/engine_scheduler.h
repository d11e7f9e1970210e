// The Engine on loom's continuous-batching Scheduler (src/runtime/scheduler.h): what
// `loom serve` runs requests on (prefix cache, preemption, chunked prefill).
#pragma once
#include <memory>

#include "server/engine.h"

namespace loom {
class Scheduler;
}

namespace loom::server {

// Wraps a started Scheduler (not owned). n_ctx: its context's cells.
std::unique_ptr<Engine> make_scheduler_engine(Scheduler& sched, int n_ctx);

}  // namespace loom::server
