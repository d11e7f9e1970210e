// Placeholder while the engine lands: the public interface builds; submit() refuses.
#include "runtime/scheduler.h"

namespace loom {

struct Scheduler::Seq {};
struct Scheduler::Req {};
struct Scheduler::Impl {};

const char* finish_reason_name(FinishReason r) {
    switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
    }
    return "?";
}

Scheduler::Scheduler(const Model& model, const ContextParams& cp, const SchedulerParams& sp, const Tokenizer* tok)
    : model_(model), ctx_(model, cp), params_(sp), tok_(tok), impl_(std::make_unique<Impl>()) {}

Scheduler::~Scheduler() { stop(); }

uint64_t Scheduler::submit(Request) { throw std::runtime_error("scheduler: not implemented yet"); }
bool Scheduler::cancel(uint64_t) { return false; }
void Scheduler::start() {}
void Scheduler::stop() {
    if (thread_.joinable()) thread_.join();
}
bool Scheduler::step() { return false; }
bool Scheduler::step_locked() { return false; }
void Scheduler::engine_loop() {}
RequestResult Scheduler::generate(Request r) {
    submit(std::move(r));
    return {};
}
SchedulerStats Scheduler::stats() const {
    std::lock_guard lk(mu_);
    return stats_;
}

}  // namespace loom
