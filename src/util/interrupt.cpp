#include "util/interrupt.h"

#include <cerrno>
#include <csignal>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

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
    // A read of standard input that starts after this (a REPL that printed its
    // prompt just before the signal) must not block: it now reads /dev/null (EOF).
    // A read already blocked returns EINTR (no SA_RESTART). Both calls are
    // async-signal-safe; errno is kept for the interrupted code.
    const int saved = errno;
    const int fd = ::open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        ::dup2(fd, 0);
        if (fd != 0) ::close(fd);
    }
    errno = saved;
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
