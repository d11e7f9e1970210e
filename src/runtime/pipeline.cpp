#include "runtime/pipeline.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "gguf/gguf.h"
#include "runtime/pipeline_wire.h"

namespace loom {

using namespace pipeline_wire;

namespace {

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
    } catch (const std::exception& e) {  // mid-step, with receives posted: the ranks disagree now
        fail(std::string("pipeline: a decode step failed on rank 0: ") + e.what());
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

}  // namespace loom
