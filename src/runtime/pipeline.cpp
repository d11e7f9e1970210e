#include "runtime/pipeline.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "gguf/gguf.h"
#include "quant/formats.h"

namespace loom {

namespace {

constexpr int kCmd = 11;    // the ordered command stream, rank r -> r + 1
constexpr int kReply = 12;  // last rank -> rank 0: a step's logits rows (and echoes)
constexpr int kHello = 13;  // rank r -> 0 once loaded

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Every command starts with this header. Create: a = n_ctx, b = n_seq_max,
// c = n_batch, d / e = KV types, f = threads (0: the rank's own -t). Decode: n_tokens, then token, pos, seq (int32
// each), one byte per token (logits wanted, padded to 4), then the hidden state
// (n_tokens x n_embd as f32, or bf16). compute_s adds up the seconds ranks 1.. spent.
struct Header {
    int32_t op = 0, ctx = 0, a = 0, b = 0, c = 0, d = 0, e = 0, n_tokens = 0;
    int32_t bf16 = 0, f = 0;
    double compute_s = 0;
};
static_assert(sizeof(Header) == 48);

// Start-up parameters rank 0 broadcasts: status 0 = go, else rank 0 failed (it says why).
struct Setup {
    int32_t status = 0, n_layer = 0, bf16 = 0, micro_batches = 1, timeout_ms = 0;
    int32_t begin[257] = {};
};

struct Hello {
    int32_t n_layer, n_embd, n_vocab, layer_begin, layer_end, embeds, heads, pid;
    uint64_t weight_bytes;
    char host[64];
};

size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

size_t decode_bytes(int T, int d, bool bf16) {
    return sizeof(Header) + 3 * sizeof(int32_t) * size_t(T) + align4(size_t(T)) +
           size_t(T) * size_t(d) * (bf16 ? 2 : 4);
}

// The hidden state into / out of a message body (after the token arrays).
void put_hidden(uint8_t* dst, const float* x, size_t n, bool bf16) {
    if (!bf16) {
        std::memcpy(dst, x, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        const uint16_t h = quant::f32_to_bf16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
    }
}
void get_hidden(float* x, const uint8_t* src, size_t n, bool bf16) {
    if (!bf16) {
        std::memcpy(x, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        x[i] = quant::bf16_to_f32(h);
    }
}

std::vector<uint8_t> command(Pipeline::Op op, int32_t ctx, int32_t a = 0, int32_t b = 0, int32_t c = 0, int32_t d = 0,
                             int32_t e = 0) {
    Header h;
    h.op = static_cast<int32_t>(op);
    h.ctx = ctx;
    h.a = a;
    h.b = b;
    h.c = c;
    h.d = d;
    h.e = e;
    std::vector<uint8_t> m(sizeof h);
    std::memcpy(m.data(), &h, sizeof h);
    return m;
}

Header header_of(const std::vector<uint8_t>& m) {
    Header h;
    if (m.size() < sizeof h) throw std::runtime_error("pipeline: a message of " + std::to_string(m.size()) + " bytes");
    std::memcpy(&h, m.data(), sizeof h);
    return h;
}

// The batch of a Decode message.
std::vector<BatchToken> batch_of(const std::vector<uint8_t>& m, int T) {
    std::vector<BatchToken> b(static_cast<size_t>(T));
    const uint8_t* p = m.data() + sizeof(Header);
    for (int i = 0; i < T; ++i) {
        std::memcpy(&b[size_t(i)].token, p + 4 * size_t(i), 4);
        std::memcpy(&b[size_t(i)].pos, p + 4 * size_t(T + i), 4);
        std::memcpy(&b[size_t(i)].seq, p + 4 * size_t(2 * T + i), 4);
        b[size_t(i)].logits = p[12 * size_t(T) + size_t(i)] != 0;
    }
    return b;
}

size_t hidden_offset(int T) { return sizeof(Header) + 12 * size_t(T) + align4(size_t(T)); }

// What rank 0 is doing with its peers, for a last word when mpirun ends it: Open MPI
// terminates every process (SIGTERM) once one dies, and its transport may stop the
// process before our calls see an error. mpirun's own message names the dead rank;
// this line says what rank 0 was waiting for. Async-signal-safe: write() and _exit().
char g_activity[512];
const char kIdle[] = "loom: error: pipeline: rank 0 was ended by mpirun (SIGTERM): a rank failed, or the job was stopped "
                     "(mpirun's message names the rank)\n";
void on_sigterm(int) {
    if (g_activity[0]) {
        size_t n = 0;
        while (n < sizeof g_activity && g_activity[n]) ++n;
        (void)!write(2, g_activity, n);
    } else {
        (void)!write(2, kIdle, sizeof kIdle - 1);
    }
    _exit(143);
}
struct Activity {
    explicit Activity(const std::string& s) {
        std::snprintf(g_activity, sizeof g_activity, "loom: error: pipeline: rank 0 was ended by mpirun (SIGTERM) %s\n",
                      s.c_str());
    }
    ~Activity() { g_activity[0] = 0; }
};

}  // namespace

// ------------------------------------------------------------------ start-up

std::unique_ptr<Pipeline> Pipeline::start(const std::string& model_path, const PipelineOptions& opts) {
    if (!(opts.spin_us >= 0 && opts.spin_us <= 1e7)) throw std::invalid_argument("--pipeline-spin-us: 0 to 10000000");
    std::unique_ptr<Pipeline> p(new Pipeline());
    p->comm_ = dist::Comm::init();
    p->comm_->set_spin_seconds(opts.spin_us * 1e-6);  // this rank's own (not sent)
    if (p->rank() == 0) {  // unless the command handles SIGTERM itself (loom serve)
        struct sigaction old {};
        if (sigaction(SIGTERM, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) std::signal(SIGTERM, on_sigterm);
    }
    p->opts_ = opts;
    const int N = p->size();
    if (N > 256) throw std::invalid_argument("--pipeline: at most 256 ranks");
    Setup s;
    std::string error;
    if (p->rank() == 0) {
        try {
            if (opts.micro_batches < 1) throw std::invalid_argument("--micro-batches must be at least 1");
            if (!(opts.timeout_s > 0)) throw std::invalid_argument("--pipeline-timeout must be positive");
            auto f = gguf::File::open(model_path);
            const std::string arch = f->get_string("general.architecture");
            const int64_t n_layer = f->get_int(arch + ".block_count");
            if (n_layer < 1 || n_layer > 4096) throw std::runtime_error(model_path + ": bad block count");
            s.n_layer = static_cast<int32_t>(n_layer);
            const dist::Split sp = opts.split.empty()
                                       ? dist::balance(dist::block_bytes(*f, s.n_layer), dist::head_bytes(*f), N)
                                       : dist::parse_split(opts.split, N, s.n_layer);
            for (int r = 0; r <= N; ++r) s.begin[r] = sp.begin[size_t(r)];
            s.bf16 = opts.bf16;
            s.micro_batches = opts.micro_batches;
            s.timeout_ms = static_cast<int32_t>(std::min(opts.timeout_s * 1e3, 2e9));
        } catch (const std::exception& e) {
            s.status = 1;
            error = e.what();
        }
    }
    p->comm_->bcast(&s, sizeof s, 0);
    if (s.status != 0) {
        p->stopped_ = true;  // the others leave by themselves
        if (p->rank() == 0) throw std::runtime_error(error);
        p.reset();  // MPI down; rank 0 says why and fails the job (an error here
        std::exit(0);  // would have mpirun end rank 0 before it says so)
    }
    p->split_.begin.assign(s.begin, s.begin + N + 1);
    p->opts_.bf16 = s.bf16 != 0;
    p->opts_.micro_batches = s.micro_batches;
    p->opts_.timeout_s = s.timeout_ms / 1e3;
    return p;
}

Pipeline::~Pipeline() {
    if (!comm_) return;
    if (rank() == 0 && size() > 1 && !stopped_) {
        std::lock_guard lk(mu_);
        try {
            send(command(Op::Stop, -1), 1, kCmd);
            drain();
        } catch (const dist::PeerError& e) {
            lost(e);
        }
        stopped_ = true;
    }
}

LoadOptions Pipeline::stage_options(LoadOptions base) const {
    base.layer_begin = split_.first(rank());
    base.layer_end = split_.end(rank());
    base.embed = rank() == 0;
    base.head = rank() == size() - 1;
    return base;
}

std::string Pipeline::describe_rank(int r) const {
    std::string s = "rank " + std::to_string(r);
    if (r >= 0 && r < split_.stages()) {
        s += " (";
        if (split_.count(r) == 0) s += "no blocks";
        else if (split_.count(r) == 1) s += "block " + std::to_string(split_.first(r));
        else s += "blocks " + std::to_string(split_.first(r)) + "-" + std::to_string(split_.end(r) - 1);
        if (r < static_cast<int>(hosts_.size()) && !hosts_[size_t(r)].empty()) s += " on " + hosts_[size_t(r)];
        s += ")";
    }
    return s;
}

void Pipeline::handshake(const Model& stage) {
    const Hparams& h = stage.hparams();
    n_embd_ = h.n_embd;
    n_vocab_ = h.n_vocab;
    Hello mine{h.n_layer, h.n_embd, h.n_vocab, stage.layer_begin(), stage.layer_end(), stage.embeds(), stage.heads(),
               static_cast<int32_t>(::getpid()),
               stage.weight_bytes(), {}};
    std::snprintf(mine.host, sizeof mine.host, "%s", comm_->host().c_str());
    try {
        if (rank() != 0) {
            std::lock_guard lk(mu_);
            std::vector<uint8_t> m(sizeof mine);
            std::memcpy(m.data(), &mine, sizeof mine);
            send(std::move(m), 0, kHello);
            drain();
            return;
        }
        hosts_.assign(size_t(size()), "");
        hosts_[0] = std::string(mine.host) + ", pid " + std::to_string(mine.pid);
        std::vector<Hello> all{mine};
        for (int r = 1; r < size(); ++r) {
            // Loading a large stage takes a while: the limit is generous here.
            const auto m = comm_->recv(r, kHello, std::max(opts_.timeout_s, 1800.0), "loading its stage");
            Hello o;
            if (m.size() != sizeof o) fail("pipeline: rank " + std::to_string(r) + " sent a bad greeting");
            std::memcpy(&o, m.data(), sizeof o);
            o.host[sizeof o.host - 1] = 0;
            hosts_[size_t(r)] = std::string(o.host) + ", pid " + std::to_string(o.pid);
            if (o.n_layer != mine.n_layer || o.n_embd != mine.n_embd || o.n_vocab != mine.n_vocab)
                fail("pipeline: " + describe_rank(r) + " loaded another model: " + std::to_string(o.n_layer) +
                     " blocks, d=" + std::to_string(o.n_embd) + ", vocab " + std::to_string(o.n_vocab) + " (rank 0: " +
                     std::to_string(mine.n_layer) + ", " + std::to_string(mine.n_embd) + ", " +
                     std::to_string(mine.n_vocab) + ")");
            all.push_back(o);
        }
        std::fprintf(stderr, "pipeline: %d ranks, blocks %s, activations %s, %d micro-batch%s\n", size(),
                     split_.describe().c_str(), opts_.bf16 ? "bf16" : "f32", opts_.micro_batches,
                     opts_.micro_batches == 1 ? "" : "es");
        for (int r = 0; r < size(); ++r) {
            const Hello& o = all[size_t(r)];
            std::fprintf(stderr, "pipeline: %s: %s%s%.1f MiB of weights\n", describe_rank(r).c_str(),
                         o.embeds ? "embeddings, " : "", o.heads ? "head, " : "", o.weight_bytes / 1048576.0);
        }
    } catch (const dist::PeerError& e) {
        lost(e);
    }
}

// ------------------------------------------------------------------ sending

void Pipeline::send(std::vector<uint8_t> msg, int dst, int tag) {
    pending_.push_back({std::move(msg), {}});
    Pending& p = pending_.back();
    p.req = comm_->isend(p.buf.data(), p.buf.size(), dst, tag);
    reap();
}

void Pipeline::reap() {
    for (auto& p : pending_) comm_->test(p.req);
    while (!pending_.empty() && !pending_.front().req.active()) pending_.pop_front();
}

void Pipeline::drain() {
    for (auto& p : pending_) comm_->wait(p.req, opts_.timeout_s, "taking a message");
    pending_.clear();
}

void Pipeline::lost(const dist::PeerError& e) { fail(std::string(e.what()) + " [" + describe_rank(e.rank) + "]"); }

void Pipeline::fail(const std::string& message) {
    std::fprintf(stderr, "loom: error: %s%s\n", rank() > 0 ? ("pipeline rank " + std::to_string(rank()) + ": ").c_str() : "",
                 message.c_str());
    comm_->abort(1);
}

size_t Pipeline::hidden_bytes_per_token() const { return size_t(n_embd_) * (opts_.bf16 ? 2 : 4); }

// ------------------------------------------------------------------ rank 0

int Pipeline::attach(const Model& first_stage, const ContextParams& cp) {
    if (rank() != 0) throw std::logic_error("pipeline: contexts are made on rank 0");
    if (first_stage.layer_begin() != 0 || !first_stage.embeds() || first_stage.heads())
        throw std::logic_error("pipeline: rank 0's context needs the first stage's model");
    std::lock_guard lk(mu_);
    const int id = next_id_++;
    try {
        auto m = command(Op::Create, id, cp.n_ctx, cp.n_seq_max, cp.n_batch, static_cast<int32_t>(cp.type_k),
                         static_cast<int32_t>(cp.type_v));
        Header h = header_of(m);
        h.f = cp.n_threads;
        std::memcpy(m.data(), &h, sizeof h);
        send(std::move(m), 1, kCmd);
    } catch (const dist::PeerError& e) {
        lost(e);
    }
    return id;
}

void Pipeline::detach(int id) noexcept {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    try {
        send(command(Op::Destroy, id), 1, kCmd);
    } catch (const dist::PeerError& e) {
        lost(e);
    } catch (const std::exception& e) {
        fail(std::string("pipeline: ") + e.what());
    }
}

void Pipeline::kv_op(int id, Op op, int32_t a, int32_t b, int32_t c) {
    std::lock_guard lk(mu_);
    if (stopped_) throw std::logic_error("pipeline: used after it stopped");
    try {
        send(command(op, id, a, b, c), 1, kCmd);
    } catch (const dist::PeerError& e) {
        lost(e);
    }
}

void Pipeline::decode(Context& ctx, std::span<const BatchToken> batch) {
    std::lock_guard lk(mu_);
    const int T = static_cast<int>(batch.size()), d = n_embd_, M = opts_.micro_batches;
    const size_t chunk = std::min<size_t>(size_t(ctx.params().n_batch), (size_t(T) + size_t(M) - 1) / size_t(M));
    const bool bf16 = opts_.bf16;
    struct Flight {
        std::vector<uint8_t> reply;
        dist::Comm::Request req;
        int out0 = 0, n_out = 0;
    };
    std::deque<Flight> flights;  // stable addresses: receives land in place
    const Activity act("during a decode step: a rank failed (mpirun's message names it) or the job was stopped; "
                       "the step went to " + describe_rank(1) + ", its logits were to come from " +
                       describe_rank(size() - 1));
    try {
        ctx.ws_.between_layers = [this] { reap(); };  // earlier steps keep moving while this one computes
        int out = 0;
        for (size_t b0 = 0; b0 < size_t(T); b0 += chunk) {
            const auto mb = batch.subspan(b0, std::min(chunk, size_t(T) - b0));
            const int n = static_cast<int>(mb.size());
            const int n_out = static_cast<int>(std::count_if(mb.begin(), mb.end(), [](const BatchToken& t) { return t.logits; }));
            Flight& f = flights.emplace_back();
            f.reply.resize(sizeof(double) + size_t(n_out) * size_t(n_vocab_) * sizeof(float));
            f.req = comm_->irecv(f.reply.data(), f.reply.size(), size() - 1, kReply);
            f.out0 = out;
            f.n_out = n_out;
            out += n_out;

            const double t0 = now_s();
            float* x = ctx.ws_.hidden(size_t(n) * size_t(d)).data();
            ctx.step(mb, x, nullptr);
            stats_.local_compute_s += now_s() - t0;

            std::vector<uint8_t> m(decode_bytes(n, d, bf16), 0);
            Header h;
            h.op = static_cast<int32_t>(Op::Decode);
            h.ctx = ctx.pipe_id_;
            h.n_tokens = n;
            h.bf16 = bf16;
            std::memcpy(m.data(), &h, sizeof h);
            uint8_t* p = m.data() + sizeof h;
            for (int i = 0; i < n; ++i) {
                std::memcpy(p + 4 * size_t(i), &mb[size_t(i)].token, 4);
                std::memcpy(p + 4 * size_t(n + i), &mb[size_t(i)].pos, 4);
                std::memcpy(p + 4 * size_t(2 * n + i), &mb[size_t(i)].seq, 4);
                p[12 * size_t(n) + size_t(i)] = mb[size_t(i)].logits ? 1 : 0;
            }
            put_hidden(m.data() + hidden_offset(n), x, size_t(n) * size_t(d), bf16);
            stats_.steps++;
            stats_.tokens += size_t(n);
            stats_.hop_bytes += m.size();
            send(std::move(m), 1, kCmd);
        }
        ctx.ws_.between_layers = nullptr;
        for (Flight& f : flights) {
            comm_->wait(f.req, opts_.timeout_s, "the logits of a decode step");
            double remote = 0;
            std::memcpy(&remote, f.reply.data(), sizeof remote);
            stats_.remote_compute_s += remote;
            stats_.reply_bytes += f.reply.size();
            std::memcpy(ctx.logits_.data() + size_t(f.out0) * size_t(n_vocab_), f.reply.data() + sizeof(double),
                        size_t(f.n_out) * size_t(n_vocab_) * sizeof(float));
        }
        reap();
    } catch (const dist::PeerError& e) {
        lost(e);
    }
}

double Pipeline::round_trip(size_t bytes, int reps) {
    std::lock_guard lk(mu_);
    std::vector<double> t;
    try {
        std::vector<uint8_t> back(bytes);
        for (int i = 0; i < std::max(1, reps); ++i) {
            auto m = command(Op::Echo, -1);
            m.resize(sizeof(Header) + bytes);
            auto req = comm_->irecv(back.data(), back.size(), size() - 1, kReply);
            const double t0 = now_s();
            send(std::move(m), 1, kCmd);
            comm_->wait(req, opts_.timeout_s, "an echo");
            t.push_back(now_s() - t0);
            reap();
        }
    } catch (const dist::PeerError& e) {
        lost(e);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

// ------------------------------------------------------------------ ranks > 0

void Pipeline::serve(const Model& stage, int n_threads) {
    const int r = rank(), N = size();
    const bool last = r == N - 1;
    std::map<int32_t, std::unique_ptr<Context>> ctxs;
    std::lock_guard lk(mu_);  // this thread alone calls MPI here
    try {
        for (;;) {
            std::vector<uint8_t> m = comm_->recv(r - 1, kCmd, 0, "the next command");  // idle: no limit
            const Header h = header_of(m);
            const Op op = static_cast<Op>(h.op);
            auto context = [&]() -> Context& {
                auto it = ctxs.find(h.ctx);
                if (it == ctxs.end()) throw std::runtime_error("pipeline: no context " + std::to_string(h.ctx));
                return *it->second;
            };
            switch (op) {
            case Op::Stop:
                if (!last) send(std::move(m), r + 1, kCmd);
                drain();
                return;
            case Op::Echo:
                if (last) {
                    m.erase(m.begin(), m.begin() + sizeof(Header));
                    send(std::move(m), 0, kReply);
                } else {
                    send(std::move(m), r + 1, kCmd);
                }
                break;
            case Op::Create: {
                if (!last) send(m, r + 1, kCmd);
                ContextParams cp;
                cp.n_ctx = h.a;
                cp.n_seq_max = h.b;
                cp.n_batch = h.c;
                cp.type_k = static_cast<GgmlType>(h.d);
                cp.type_v = static_cast<GgmlType>(h.e);
                cp.n_threads = h.f > 0 ? h.f : n_threads;  // rank 0's -t, as loom bench sweeps it
                ctxs[h.ctx] = std::make_unique<Context>(stage, cp);
                ctxs[h.ctx]->ws_.between_layers = [this] { reap(); };
                break;
            }
            case Op::Destroy:
                if (!last) send(m, r + 1, kCmd);
                ctxs.erase(h.ctx);
                break;
            case Op::Fork:
            case Op::SeqRm:
            case Op::RemoveSeq:
            case Op::Clear: {
                if (!last) send(m, r + 1, kCmd);
                Context& c = context();
                if (op == Op::Fork) c.kv_.fork(h.a, h.b, h.c);
                else if (op == Op::SeqRm) c.kv_.seq_rm(h.a, h.b);
                else if (op == Op::RemoveSeq) c.kv_.remove_seq(h.a);
                else c.kv_.clear();
                break;
            }
            case Op::Decode: {
                Context& c = context();
                const int T = h.n_tokens, d = stage.hparams().n_embd, V = stage.hparams().n_vocab;
                const bool bf16 = h.bf16 != 0;
                if (T < 1 || m.size() != decode_bytes(T, d, bf16))
                    throw std::runtime_error("pipeline: a decode step of " + std::to_string(m.size()) + " bytes for " +
                                             std::to_string(T) + " tokens");
                const std::vector<BatchToken> batch = batch_of(m, T);
                float* x = c.ws_.hidden(size_t(T) * size_t(d)).data();
                get_hidden(x, m.data() + hidden_offset(T), size_t(T) * size_t(d), bf16);
                const int n_out = static_cast<int>(std::count_if(batch.begin(), batch.end(), [](const BatchToken& t) { return t.logits; }));
                std::vector<uint8_t> reply;
                if (last) reply.resize(sizeof(double) + size_t(n_out) * size_t(V) * sizeof(float));
                const double t0 = now_s();
                c.step(batch, x, last ? reinterpret_cast<float*>(reply.data() + sizeof(double)) : nullptr);
                const double compute = h.compute_s + (now_s() - t0);
                if (last) {
                    std::memcpy(reply.data(), &compute, sizeof compute);
                    send(std::move(reply), 0, kReply);
                } else {
                    Header out = h;
                    out.compute_s = compute;
                    std::memcpy(m.data(), &out, sizeof out);
                    put_hidden(m.data() + hidden_offset(T), x, size_t(T) * size_t(d), bf16);
                    send(std::move(m), r + 1, kCmd);
                }
                break;
            }
            default:
                throw std::runtime_error("pipeline: unknown command " + std::to_string(h.op));
            }
        }
    } catch (const dist::PeerError& e) {
        lost(e);
    } catch (const std::exception& e) {
        fail(e.what());
    }
}

}  // namespace loom
