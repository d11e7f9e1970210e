// loom: run quantized LLMs fast on CPUs.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "util/interrupt.h"
#include "util/version.h"

int main(int argc, char** argv) {
    CLI::App app{"loom: run quantized LLMs (GGUF) fast on CPUs, for one user or many"};
    app.require_subcommand(1);
    app.set_version_flag("--version", loom::version_string());
    app.footer("Run `loom SUBCOMMAND --help` for a subcommand's options.");
    loom::cli::add_run(app);
    loom::cli::add_synth(app);
    loom::cli::add_info(app);
    loom::cli::add_tokenize(app);
    loom::cli::add_chat(app);
    loom::cli::add_bench(app);
    loom::cli::add_quantize(app);
#ifdef LOOM_HAVE_HTTP
    loom::cli::add_serve(app);
#endif
    // llama.cpp's multi-letter short flags, which CLI11 cannot declare.
    static const char* const kAliases[][2] = {{"-ctk", "--cache-type-k"}, {"-ctv", "--cache-type-v"}, {"-np", "--parallel"}};
    std::vector<char*> args(argv, argv + argc);
    for (char*& a : args)
        for (const auto& [from, to] : kAliases)
            if (std::strcmp(a, from) == 0) a = const_cast<char*>(to);
    try {
        app.parse(static_cast<int>(args.size()), args.data());
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const loom::cli::Interrupted&) {  // Ctrl-C: statistics already printed
        return loom::kInterruptedExitCode;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "loom: error: out of memory (a smaller -c or model may fit)\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "loom: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
