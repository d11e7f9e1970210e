#include "util/interrupt.h"

#include <csignal>

#include <signal.h>

namespace loom {

namespace {
volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_sigint(int) {
    if (g_interrupted) {  // the second Ctrl-C: do what it does without a handler
        std::signal(SIGINT, SIG_DFL);
        std::raise(SIGINT);
        return;
    }
    g_interrupted = 1;
}
}  // namespace

void install_interrupt_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns EINTR
    sigaction(SIGINT, &sa, nullptr);
}

bool interrupted() { return g_interrupted != 0; }
void clear_interrupt() { g_interrupted = 0; }

}  // namespace loom
