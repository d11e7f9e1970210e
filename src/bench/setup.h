// What a benchmark runs on: the cache folder, synthetic models kept there, and
// descriptions of the machine, the model and the build for reports.
#pragma once
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace loom::bench {

// --cache-dir if given, else $LOOM_CACHE_DIR, $XDG_CACHE_HOME/loom, ~/.cache/loom
// (./.loom-cache without HOME).
std::string cache_dir(const std::string& override_dir = {});

// Path of the cached synthetic model: <dir>/<shape>.<type>.gguf.
std::string synthetic_path(const std::string& dir, const std::string& shape, const std::string& type);

// True if `path` is a complete synthetic model of `shape` and `type` (same
// layers, width, vocabulary): readable GGUF with the expected metadata.
bool synthetic_valid(const std::string& path, const std::string& shape, const std::string& type);

// Returns the cached synthetic model, writing it first if missing or invalid.
// Throws std::invalid_argument for an unknown shape or type (one line).
std::string ensure_synthetic(const std::string& dir, const std::string& shape, const std::string& type, int threads,
                             const std::function<void(const std::string& line, bool final)>& log);

nlohmann::json machine_json(const Model* model, const std::string& label);
nlohmann::json model_json(const Model& model, const std::string& synthetic_shape);
nlohmann::json build_json();

}  // namespace loom::bench
