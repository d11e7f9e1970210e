// Tokenizer throughput: ~1 MB of English prose and ~1 MB of Chinese text with the Llama 3
// (llama-bpe) vocabulary, plus SentencePiece (llama-spm) and detokenization for reference.
// Reads ../shared/vocab (LOOM_SHARED overrides); skips when absent.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

std::filesystem::path shared_dir() {
    if (const char* env = std::getenv("LOOM_SHARED")) return env;
    return LOOM_SHARED_DIR;
}

loom::Tokenizer* vocab(const std::string& name) {
    static std::map<std::string, std::unique_ptr<loom::Tokenizer>> cache;
    auto it = cache.find(name);
    if (it != cache.end()) return it->second.get();
    const auto path = shared_dir() / "vocab" / ("ggml-vocab-" + name + ".gguf");
    if (!std::filesystem::exists(path)) return nullptr;
    auto f = loom::gguf::File::open(path.string());
    return cache.emplace(name, loom::Tokenizer::from_gguf(*f)).first->second.get();
}

const char* const kEnglish[] = {
    "Large language models generate text one token at a time. Each new token requires reading "
    "every weight of the model from memory once, so on a CPU the speed of generation is limited "
    "by memory bandwidth, while encoding the prompt is limited by arithmetic throughput.",
    "The old lighthouse keeper climbed the spiral staircase every evening at dusk, carrying a "
    "brass lantern and a thermos of black coffee. He had done it for thirty-seven years, through "
    "storms that rattled the windows and calm nights when the sea lay flat as poured glass.",
    "In 1848, gold was discovered at Sutter's Mill in Coloma, California. News spread quickly, "
    "and within a year roughly 300,000 people had rushed to the territory, transforming San "
    "Francisco from a small settlement into a booming city almost overnight.",
    "\"Don't forget the milk,\" she called from the kitchen, but he was already halfway down the "
    "street, humming a tune he couldn't quite name. It wasn't until he reached the corner that "
    "he realized he'd left his wallet on the hall table -- again.",
    "Photosynthesis converts light energy into chemical energy stored in glucose. Chlorophyll "
    "absorbs mostly blue and red wavelengths, reflecting green, which is why leaves look the way "
    "they do; in autumn, as chlorophyll breaks down, carotenoids reveal yellows and oranges.",
    "To install the package, run the installer, accept the license agreement, and choose a "
    "destination folder. If the setup fails with error 0x80070005, restart your computer and try "
    "again with administrator privileges. Version 2.4.1 fixes several known issues.",
    "Economists disagree about whether moderate inflation helps or harms long-term growth. Some "
    "argue that a steady rate near two percent greases the wheels of the labor market; others "
    "point out that unexpected price changes distort decisions about saving and investment.",
    "The committee met on Tuesday, March 14th, to review the proposal. After nearly four hours of "
    "discussion, members voted 7-2 in favor, with the chair noting that implementation would "
    "require an additional $1.2 million and at least eighteen months of planning.",
    "She opened the letter slowly. The handwriting was unfamiliar: tall, slanted letters pressed "
    "hard into cheap paper. \"If you are reading this,\" it began, \"then the garden has finally "
    "been sold, and you deserve to know what is buried beneath the pear tree.\"",
    "Modern compilers perform aggressive optimizations such as inlining, loop unrolling, "
    "vectorization and dead-code elimination. Understanding what the optimizer can and cannot "
    "prove about aliasing is often the key to writing fast, portable C++ code.",
};

const char* const kChinese[] = {
    "大型语言模型每次生成一个词元。每生成一个新的词元，都需要从内存中读取模型的全部权重，因此在中央处理器上，生成速度受限于内存带宽，而处理提示词则受限于算术吞吐量。",
    "清晨的山谷里弥漫着薄雾，远处传来几声鸟鸣。老人沿着石板小路慢慢走向河边，手里提着竹篮，篮子里装着刚从园子里摘下的青菜和几个鸡蛋。",
    "一八四八年，人们在加利福尼亚发现了黄金。消息迅速传开，不到一年，大约三十万人涌入这片土地，旧金山也从一个小小的定居点变成了繁华的城市。",
    "经济学家对于温和的通货膨胀究竟有利还是有害于长期增长，看法并不一致。有人认为稳定在百分之二左右的物价上涨有助于劳动力市场的调整；也有人指出，意料之外的价格变化会扭曲储蓄和投资决策。",
    "她慢慢地拆开那封信。字迹很陌生：高高的、向右倾斜的字母，用力地压在廉价的纸上。“如果你正在读这封信，”信的开头写道，“那么花园终于已经卖掉了。”",
    "光合作用把光能转化为储存在葡萄糖中的化学能。叶绿素主要吸收蓝光和红光，反射绿光，这就是叶子呈现绿色的原因；到了秋天，叶绿素分解，胡萝卜素便显露出黄色和橙色。",
    "委员会于三月十四日星期二开会审议这项提案。经过将近四个小时的讨论，成员们以七比二的票数通过，主席指出，实施该方案还需要额外的一百二十万元资金以及至少十八个月的筹备时间。",
    "现代编译器会进行内联、循环展开、向量化和死代码消除等激进的优化。理解优化器能够证明和不能证明的别名关系，往往是编写高效且可移植代码的关键。",
};

// ~1 MB: paragraphs in a shuffled order, separated by blank lines.
template <size_t N>
std::string make_corpus(const char* const (&paras)[N], size_t bytes, const char* sep) {
    std::mt19937 rng(42);
    std::string s;
    s.reserve(bytes + 4096);
    while (s.size() < bytes) {
        s += paras[rng() % N];
        s += sep;
    }
    return s;
}

const std::string& english() {
    static const std::string s = make_corpus(kEnglish, 1 << 20, "\n\n");
    return s;
}
const std::string& chinese() {
    static const std::string s = make_corpus(kChinese, 1 << 20, "\n");
    return s;
}

void run_tokenize(benchmark::State& state, const char* vocab_name, const std::string& text, bool cache = true) {
    loom::Tokenizer* tok = vocab(vocab_name);
    if (!tok) {
        state.SkipWithError("../shared/vocab not found (set LOOM_SHARED)");
        return;
    }
    tok->set_word_cache(cache);
    size_t n_tokens = 0;
    for (auto _ : state) {
        auto ids = tok->tokenize(text, false, false);
        n_tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
    state.counters["tokens"] = static_cast<double>(n_tokens);
    state.counters["bytes/token"] = static_cast<double>(text.size()) / static_cast<double>(n_tokens ? n_tokens : 1);
    tok->set_word_cache(true);
}

void BM_Tokenize_Llama3_English(benchmark::State& s) { run_tokenize(s, "llama-bpe", english()); }
void BM_Tokenize_Llama3_Chinese(benchmark::State& s) { run_tokenize(s, "llama-bpe", chinese()); }
// Word cache off: every word goes through the merges (the vocabulary lookup of whole words
// that Llama 3 does first stays).
void BM_Tokenize_Llama3_English_NoCache(benchmark::State& s) { run_tokenize(s, "llama-bpe", english(), false); }
void BM_Tokenize_Llama3_Chinese_NoCache(benchmark::State& s) { run_tokenize(s, "llama-bpe", chinese(), false); }
void BM_Tokenize_Spm_English_NoCache(benchmark::State& s) { run_tokenize(s, "llama-spm", english(), false); }
void BM_Tokenize_Gpt2_English(benchmark::State& s) { run_tokenize(s, "gpt-2", english()); }
void BM_Tokenize_Spm_English(benchmark::State& s) { run_tokenize(s, "llama-spm", english()); }
void BM_Tokenize_Spm_Chinese(benchmark::State& s) { run_tokenize(s, "llama-spm", chinese()); }

void BM_Detokenize_Llama3_English(benchmark::State& state) {
    const loom::Tokenizer* tok = vocab("llama-bpe");
    if (!tok) {
        state.SkipWithError("../shared/vocab not found (set LOOM_SHARED)");
        return;
    }
    const auto ids = tok->tokenize(english(), false, false);
    for (auto _ : state) {
        auto text = tok->detokenize(ids);
        benchmark::DoNotOptimize(text.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(english().size()));
}

void BM_Load_Llama3_Vocab(benchmark::State& state) {
    const auto path = shared_dir() / "vocab" / "ggml-vocab-llama-bpe.gguf";
    if (!std::filesystem::exists(path)) {
        state.SkipWithError("../shared/vocab not found (set LOOM_SHARED)");
        return;
    }
    auto f = loom::gguf::File::open(path.string());
    for (auto _ : state) {
        auto tok = loom::Tokenizer::from_gguf(*f);
        benchmark::DoNotOptimize(tok.get());
    }
}

}  // namespace

BENCHMARK(BM_Tokenize_Llama3_English)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tokenize_Llama3_Chinese)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tokenize_Llama3_English_NoCache)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tokenize_Llama3_Chinese_NoCache)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tokenize_Spm_English_NoCache)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tokenize_Gpt2_English)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tokenize_Spm_English)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tokenize_Spm_Chinese)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Detokenize_Llama3_English)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Load_Llama3_Vocab)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
