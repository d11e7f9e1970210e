# Shared helpers for scripts/*: sourced, not run.
# shellcheck shell=bash

LOOM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LOOM_ROOT
LOOM_JOBS="${LOOM_JOBS:-2}"          # the CI machine has 2 cores
LOOM_T0="${LOOM_T0:-$SECONDS}"

# Seconds since the first script of this run started.
loom_elapsed() { echo $((SECONDS - LOOM_T0)); }

loom_banner() { printf '\n==> %s  [t+%ss]\n' "$*" "$(loom_elapsed)"; }

# step "description" cmd args...: banner, run, report time; returns cmd's status.
step() {
    local what="$1"; shift
    local t0=$SECONDS rc=0
    loom_banner "$what"
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        printf '==> done: %s (%ss)\n' "$what" $((SECONDS - t0))
    else
        printf '==> FAILED (exit %s): %s (%ss)\n' "$rc" "$what" $((SECONDS - t0))
    fi
    return "$rc"
}

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The build dir must be a Ninja build (re-running with another generator fails).
loom_check_generator() {
    local dir="$1" cache="$1/CMakeCache.txt"
    if [ -f "$cache" ] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$cache"; then
        die "$dir was configured with another generator than Ninja: remove it (rm -rf $dir) and re-run"
    fi
}
