#include "util/parse.h"

#include <stdexcept>

namespace loom {

std::vector<int> parse_int_list(const std::string& s, const std::string& what, int min_value) {
    constexpr long long kMax = 1000000000LL;
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
        bool out_of_range = false;
        if (!item.empty() && used == 0) {  // digits std::stoll could not hold
            size_t k = item[0] == '-' || item[0] == '+' ? 1 : 0;
            out_of_range = k < item.size() && item.find_first_not_of("0123456789", k) == std::string::npos;
        }
        if (out_of_range || (used == item.size() && !item.empty() && (v > kMax || v < -kMax)))
            throw std::invalid_argument(what + ": '" + item + "' is out of range (-" + std::to_string(kMax) + " to " +
                                        std::to_string(kMax) + ")");
        if (item.empty() || used != item.size())
            throw std::invalid_argument(what + ": '" + item + "' is not an integer (expected a comma list like 1,2,4)");
        if (v < min_value)
            throw std::invalid_argument(what + ": '" + item + "' is below " + std::to_string(min_value));
        out.push_back(static_cast<int>(v));
        i = j + 1;
    }
    return out;
}

}  // namespace loom
