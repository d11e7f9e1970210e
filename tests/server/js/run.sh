#!/usr/bin/env bash
# ctest server.openai_js: the official openai npm client against `loom serve`.
#   run.sh LOOM_BINARY SHARED_DIR
# Skips (exit 77) with a message when node, the npm packages or ../shared are
# missing; under CI (CI set) a missing node or package fails instead.
set -u
loom="$1" shared="$2"
here="$(cd "$(dirname "$0")" && pwd)"
model="$shared/models/llama3-tiny.q8_0.gguf"
skip() {
    if [ -n "${CI:-}" ]; then echo "FAIL: $1 (CI is set, so this is an error)"; exit 1; fi
    echo "SKIP: $1"; exit 77
}
command -v node >/dev/null || skip "node not found: install nodejs and npm (scripts/setup)"
[ -d "$here/node_modules/openai" ] || skip "tests/server/js/node_modules missing: run scripts/setup (npm ci there)"
[ -f "$model" ] || { echo "SKIP: needs test data: $model not found"; exit 77; }
exec node "$here/openai_test.mjs" "$loom" "$model"
