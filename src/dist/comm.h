// The transport of a pipeline: MPI point-to-point messages between the ranks of
// one job (`mpirun -np N loom ...`; Open MPI or MPICH, standard MPI-3 calls only).
// Errors come back to the caller (MPI_ERRORS_RETURN on a private communicator)
// and every wait polls against a deadline, so a peer that dies or stops answering
// ends in a PeerError naming its rank, not in a hang. Built without MPI
// (available() false), init() throws a one-line error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom::dist {

// Whether this build has MPI (CMake found it).
bool available();

// A failed or timed-out message to or from `rank`.
struct PeerError : std::runtime_error {
    PeerError(int r, const std::string& what) : std::runtime_error(what), rank(r) {}
    int rank;
};

class Comm {
public:
    // MPI_Init_thread asking for MPI_THREAD_SERIALIZED (any thread may call, one at a
    // time: callers serialize), then a duplicate of MPI_COMM_WORLD. Once per process.
    static std::unique_ptr<Comm> init();
    ~Comm();  // MPI_Finalize (not after abort())
    Comm(const Comm&) = delete;
    Comm& operator=(const Comm&) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }
    const std::string& host() const { return host_; }

    // A pending non-blocking send or receive; its buffer must live until it completes.
    class Request {
    public:
        bool active() const { return active_; }

    private:
        friend class Comm;
        alignas(8) unsigned char raw_[16] = {};
        bool active_ = false;
        int peer_ = -1;
    };
    Request isend(const void* data, size_t bytes, int dst, int tag);
    Request irecv(void* data, size_t bytes, int src, int tag);
    // True once complete (the request is then inactive); PeerError on an MPI error.
    bool test(Request& r);
    // Until complete: polls (spinning briefly, then sleeping in short naps). timeout_s
    // <= 0: no limit; else PeerError "no answer from rank R ... (what)" after it.
    void wait(Request& r, double timeout_s, const std::string& what);
    // The next message from src with tag, of any size (polls as wait()).
    std::vector<uint8_t> recv(int src, int tag, double timeout_s, const std::string& what);
    // Blocking broadcast from root (start-up only).
    void bcast(void* data, size_t bytes, int root);
    // Ends every rank of the job (MPI_Abort) with this exit code.
    [[noreturn]] void abort(int code);

    // Seconds polled before a wait starts napping (default 100 µs): lower it where
    // ranks share cores, raise it for the lowest per-hop latency.
    void set_spin_seconds(double s) { spin_s_ = s; }

private:
    Comm() = default;
    [[noreturn]] void fail(int peer, int err, const std::string& what) const;
    int rank_ = 0, size_ = 1;
    std::string host_;
    double spin_s_ = 100e-6;
    alignas(8) unsigned char comm_[16] = {};  // the MPI_Comm
    bool aborted_ = false;
};

}  // namespace loom::dist
