#include "util/parse.h"

#include <stdexcept>

namespace loom {

std::vector<int> parse_int_list(const std::string& s, const std::string& what, int min_value) {
    if (s.empty()) throw std::invalid_argument(what + ": empty list (expected a comma list like 1,2,4)");
    std::vector<int> out;
    size_t i = 0;
    while (i <= s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        std::string item = s.substr(i, j - i);
        while (!item.empty() && item.front() == ' ') item.erase(item.begin());
        while (!item.empty() && item.back() == ' ') item.pop_back();
        size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (item.empty() || used != item.size() || v > 1000000000LL || v < -1000000000LL)
            throw std::invalid_argument(what + ": '" + item + "' is not an integer (expected a comma list like 1,2,4)");
        if (v < min_value)
            throw std::invalid_argument(what + ": '" + item + "' is below " + std::to_string(min_value));
        out.push_back(static_cast<int>(v));
        i = j + 1;
    }
    return out;
}

}  // namespace loom
