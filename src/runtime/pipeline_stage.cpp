// The ranks > 0 of a pipeline (runtime/pipeline.h): the command loop.
#include <algorithm>
#include <map>

#include "runtime/pipeline.h"
#include "runtime/pipeline_wire.h"

namespace loom {

using namespace pipeline_wire;

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
