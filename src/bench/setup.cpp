#include "bench/setup.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "bench/bench.h"
#include "bench/probe.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/synth.h"
#include "util/version.h"

namespace loom::bench {

namespace fs = std::filesystem;

std::string cache_dir(const std::string& override_dir) {
    if (!override_dir.empty()) return override_dir;
    if (const char* e = std::getenv("LOOM_CACHE_DIR"); e && *e) return e;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "loom").string();
    if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache" / "loom").string();
    return ".loom-cache";
}

std::string synthetic_path(const std::string& dir, const std::string& shape, const std::string& type) {
    std::string t = type;
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
    return (fs::path(dir) / (shape + "." + t + ".gguf")).string();
}

namespace {

GgmlType synth_type(const std::string& type) {
    auto t = type_from_name(type);
    if (!t || (*t != GgmlType::Q4_0 && *t != GgmlType::Q8_0 && *t != GgmlType::Q4_K && *t != GgmlType::Q5_K &&
               *t != GgmlType::Q6_K && *t != GgmlType::F16 && *t != GgmlType::BF16 && *t != GgmlType::F32))
        throw std::invalid_argument("--type: unknown or unsupported weight type '" + type +
                                    "' (synthetic models: q4_0, q8_0, q4_k, q5_k, q6_k, f16, bf16, f32)");
    return *t;
}

}  // namespace

bool synthetic_valid(const std::string& path, const std::string& shape, const std::string& type) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return false;
    try {
        const SynthShape& s = synth_shape(shape);
        const GgmlType wt = synth_type(type);
        auto f = gguf::File::open(path);  // validates the header, tensor table and sizes
        const std::string a = f->get_string("general.architecture", "");
        if (a != s.arch) return false;
        if (f->get_string("general.name", "").rfind("synthetic " + s.name + " (", 0) != 0) return false;
        if (f->get_int(a + ".block_count", -1) != s.n_layer) return false;
        if (f->get_int(a + ".embedding_length", -1) != s.n_embd) return false;
        if (f->get_int(a + ".feed_forward_length", -1) != s.n_ff) return false;
        const gguf::TensorInfo* q = f->find_tensor("blk.0.ffn_down.weight");
        if (!q || q->type != wt) return false;
        const gguf::TensorInfo* e = f->find_tensor("token_embd.weight");
        return e && e->ne.size() == 2 && e->ne[1] == s.n_vocab;
    } catch (const std::exception&) {
        return false;
    }
}

std::string ensure_synthetic(const std::string& dir, const std::string& shape, const std::string& type, int threads,
                             const std::function<void(const std::string&, bool)>& log) {
    const SynthShape& s = synth_shape(shape);  // throws "unknown shape 'x' (known: ...)"
    SynthOptions so;
    so.type = synth_type(type);
    so.n_threads = threads;
    const std::string path = synthetic_path(dir, shape, type);
    if (synthetic_valid(path, shape, type)) {
        if (log) log("model: synthetic " + s.name + " (" + s.description + "), " + type + ": " + path + " (cached)", true);
        return path;
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error("cannot create the cache folder '" + dir + "': " + ec.message());
    const bool existed = fs::exists(path, ec);
    if (log)
        log(std::string("model: ") + (existed ? "cached file is stale or damaged, rewriting " : "writing ") +
                "synthetic " + s.name + " (" + s.description + "), " + type + " -> " + path, true);
    const double t0 = steady_seconds();
    int last_pct = -1;
    so.progress = [&](uint64_t done, uint64_t total) {
        const int pct = total ? static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)) : 100;
        if (pct == last_pct || !log) return;
        last_pct = pct;
        char buf[160];
        const double el = steady_seconds() - t0;
        std::snprintf(buf, sizeof buf, "model: %.2f / %.2f GB (%3d%%), %.2f GB/s", static_cast<double>(done) / 1e9,
                      static_cast<double>(total) / 1e9, pct, el > 0 ? static_cast<double>(done) / 1e9 / el : 0.0);
        log(buf, false);
    };
    const uint64_t bytes = synth_write(shape, path, so);
    if (log) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "model: wrote %.2f GB in %.1f s", static_cast<double>(bytes) / 1e9,
                      steady_seconds() - t0);
        log(buf, true);
    }
    if (!synthetic_valid(path, shape, type))
        throw std::runtime_error("synthetic model '" + path + "' failed its check after writing");
    return path;
}

// ------------------------------------------------------------------ descriptions

namespace {

double total_ram_gb() {
    std::ifstream f("/proc/meminfo");
    std::string key, unit;
    double kb = 0;
    while (f >> key >> kb >> unit)
        if (key == "MemTotal:") return kb * 1024 / 1e9;
    return 0;
}

}  // namespace

nlohmann::json machine_json(const Model* model, const std::string& label) {
    const uint32_t feat = kernels::cpu_features();
    nlohmann::json m;
    m["label"] = label.empty() ? kernels::cpu_model_name() : label;
    m["cpu_model"] = kernels::cpu_model_name();
    m["cores"] = std::thread::hardware_concurrency();
    m["features"] = kernels::feature_names(feat);
    m["isa"] = kernels::forced_isa().empty() ? "auto" : kernels::forced_isa();
    if (int sve = kernels::sve_vector_bits(); sve > 0) m["sve_bits"] = sve;
    m["memory_gb"] = total_ram_gb();
    utsname u{};
    if (uname(&u) == 0) m["os"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
    // Kernels used, per weight type of the model (or the common ones).
    std::vector<GgmlType> types;
    if (model) {
        for (const auto& t : model->file().tensors())
            if (t.ne.size() >= 2 && t.n_rows() > 1) {
                GgmlType ty = t.type;
                if (ty == GgmlType::Q4_0_4_4 || ty == GgmlType::Q4_0_4_8 || ty == GgmlType::Q4_0_8_8) ty = GgmlType::Q4_0;
                if (std::find(types.begin(), types.end(), ty) == types.end()) types.push_back(ty);
            }
    } else {
        types = {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q6_K};
    }
    nlohmann::json k = nlohmann::json::object();
    std::string isas;
    for (GgmlType t : types) {
        const kernels::MatmulKernel* mk = kernels::select(t, feat);
        k[std::string(type_name(t))] = mk ? mk->name : "reference";
        const std::string isa = mk ? mk->isa : "reference";
        if (isas.find(isa) == std::string::npos) isas += (isas.empty() ? "" : " ") + isa;
    }
    m["kernels"] = k;
    m["isa_used"] = isas;
    return m;
}

nlohmann::json model_json(const Model& model, const std::string& synthetic_shape) {
    const Hparams& hp = model.hparams();
    const gguf::File& f = model.file();
    std::map<std::string, int> types;
    for (const auto& t : f.tensors()) types[std::string(type_name(t.type))]++;
    nlohmann::json j;
    j["file"] = f.path();
    j["name"] = f.get_string("general.name", "");
    j["arch"] = hp.arch;
    j["synthetic"] = synthetic_shape.empty() ? nlohmann::json(nullptr) : nlohmann::json(synthetic_shape);
    j["n_params"] = model.n_params();
    j["weight_bytes"] = model.weight_bytes();
    j["file_bytes"] = f.file_size();
    j["types"] = types;
    j["n_layer"] = hp.n_layer;
    j["n_embd"] = hp.n_embd;
    j["n_head"] = hp.n_head;
    j["n_head_kv"] = hp.n_head_kv;
    j["n_ff"] = hp.n_ff;
    j["n_vocab"] = hp.n_vocab;
    j["describe"] = model.describe();
    return j;
}

nlohmann::json build_json() {
    nlohmann::json b;
    b["version"] = loom::version();
    b["commit"] = loom::git_commit();
#if defined(__clang__)
    b["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    b["compiler"] = std::string("gcc ") + __VERSION__;
#else
    b["compiler"] = "unknown";
#endif
#ifdef NDEBUG
    b["build_type"] = "release";
#else
    b["build_type"] = "debug";
#endif
    return b;
}

}  // namespace loom::bench
