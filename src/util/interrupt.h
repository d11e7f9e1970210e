// Ctrl-C for long-running commands: the first SIGINT only raises a flag that
// generation loops poll (they stop, print their statistics and exit with 130, as
// shells expect of a command ended by SIGINT); a second SIGINT ends the process
// at once, the way it would without a handler.
#pragma once

namespace loom {

inline constexpr int kInterruptedExitCode = 130;  // 128 + SIGINT

// Installs the handler (idempotent). Blocking reads (a terminal's line) return
// early with EINTR instead of being restarted, and standard input then reads as
// empty (/dev/null), so a REPL sees the interrupt even if it arrives between its
// prompt and its read.
void install_interrupt_handler();
bool interrupted();       // a SIGINT arrived since the handler was installed
void clear_interrupt();   // tests

}  // namespace loom
