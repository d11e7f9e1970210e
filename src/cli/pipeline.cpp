// --pipeline and its options, shared by run, logits, bench and serve.
#include <cstdio>

#include "cli/commands.h"
#include "model/model.h"
#include "runtime/pipeline.h"
#include "util/parse.h"

namespace loom::cli {

void add_pipeline_options(CLI::App* c, PipelineCliOpts& o) {
    const std::string g = "Pipeline (mpirun -np N loom ... --pipeline)";
    c->add_flag("--pipeline", o.on, "Split the model's layers over the ranks of an MPI job (rank 0 runs this command)")
        ->group(g);
    c->add_option("--split", o.split, "Layers per rank, e.g. 20,20,40 (default: balanced by weight bytes)")->group(g);
    c->add_option("--pipeline-dtype", o.dtype, "Activations between ranks: f32 (bit-identical) or bf16 (half the bytes)")
        ->check(CLI::IsMember({"f32", "bf16"}))
        ->capture_default_str()
        ->group(g);
    c->add_option("--micro-batches", o.micro_batches,
                  "Cut each decode call into this many steps in flight (loom bench: a list, e.g. 1,2,4)")
        ->capture_default_str()
        ->group(g);
    c->add_option("--pipeline-timeout", o.timeout_s, "Seconds without an answer from a rank before the job ends")
        ->capture_default_str()
        ->group(g);
    c->add_option("--pipeline-spin-us", o.spin_us,
                  "Microseconds a waiting rank polls before napping (more: lower latency on own cores; 0: shared cores)")
        ->capture_default_str()
        ->group(g);
}

std::unique_ptr<Pipeline> start_pipeline(const PipelineCliOpts& o, const std::string& model_path, bool allow_list) {
    if (!o.on) {
        if (!o.split.empty()) throw std::invalid_argument("--split needs --pipeline");
        if (o.micro_batches != "1") throw std::invalid_argument("--micro-batches needs --pipeline");
        if (o.dtype != "f32") throw std::invalid_argument("--pipeline-dtype needs --pipeline");
        return nullptr;
    }
    PipelineOptions po;
    po.split = o.split;
    po.bf16 = o.dtype == "bf16";
    const std::vector<int> mb = parse_int_list(o.micro_batches, "--micro-batches", 1);
    if (mb.size() != 1 && !allow_list)
        throw std::invalid_argument("--micro-batches " + o.micro_batches + ": give one count (lists are for loom bench)");
    po.micro_batches = mb.front();
    po.timeout_s = o.timeout_s;
    po.spin_us = o.spin_us;
    return Pipeline::start(model_path, po);
}

std::unique_ptr<Model> load_stage(Pipeline* pipe, const std::string& path, LoadOptions lo, int n_threads) {
    if (!pipe) return Model::load(path, lo);
    std::unique_ptr<Model> m;
    if (pipe->rank() == 0) {
        m = Model::load(path, pipe->stage_options(lo));
    } else {
        lo.verbose = false;  // one repack line: rank 0's
        try {
            m = Model::load(path, pipe->stage_options(lo));
        } catch (const std::exception& e) {
            pipe->fail(e.what());  // the whole job ends: rank 0 waits for this stage
        }
    }
    pipe->handshake(*m);
    if (pipe->rank() == 0) return m;
    pipe->serve(*m, n_threads);
    return nullptr;
}

}  // namespace loom::cli
