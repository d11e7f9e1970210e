#include "dist/comm.h"

#include <time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#ifdef LOOM_HAVE_MPI
#include <mpi.h>
#endif

namespace loom::dist {

#ifndef LOOM_HAVE_MPI

bool available() { return false; }
std::unique_ptr<Comm> Comm::init() {
    throw std::runtime_error("--pipeline: this loom was built without MPI (install libopenmpi-dev or libmpich-dev "
                             "and build again)");
}
Comm::~Comm() = default;
void Comm::fail(int peer, int, const std::string& what) const { throw PeerError(peer, what); }
Comm::Request Comm::isend(const void*, size_t, int, int) { fail(-1, 0, "no MPI"); }
Comm::Request Comm::irecv(void*, size_t, int, int) { fail(-1, 0, "no MPI"); }
bool Comm::test(Request&) { return true; }
void Comm::wait(Request&, double, const std::string&) {}
std::vector<uint8_t> Comm::recv(int, int, double, const std::string&) { fail(-1, 0, "no MPI"); }
void Comm::bcast(void*, size_t, int) {}
void Comm::abort(int code) { std::exit(code); }

#else

static_assert(sizeof(MPI_Request) <= 16 && alignof(MPI_Request) <= 8);
static_assert(sizeof(MPI_Comm) <= 16 && alignof(MPI_Comm) <= 8);

namespace {
double seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}
void nap() {  // ~20 µs: a waiting rank leaves the core to a computing one
    timespec ts{0, 20000};
    nanosleep(&ts, nullptr);
}
MPI_Request& req_of(unsigned char* raw) { return *reinterpret_cast<MPI_Request*>(raw); }
MPI_Comm comm_of(const unsigned char* raw) { return *reinterpret_cast<const MPI_Comm*>(raw); }
std::string error_string(int err) {
    char buf[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(err, buf, &n) != MPI_SUCCESS) return "MPI error " + std::to_string(err);
    return std::string(buf, static_cast<size_t>(n));
}
int count_of(size_t bytes) {
    if (bytes > static_cast<size_t>(INT_MAX))
        throw std::invalid_argument("pipeline: a message of " + std::to_string(bytes) + " bytes is over MPI's 2 GiB count");
    return static_cast<int>(bytes);
}
}  // namespace

bool available() { return true; }

std::unique_ptr<Comm> Comm::init() {
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) throw std::logic_error("MPI is already initialized");
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        throw std::runtime_error("--pipeline: MPI_Init_thread failed");
    std::unique_ptr<Comm> c(new Comm());
#ifdef __linux__
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);  // naps of ~20 µs, not the default slack's ~70
#endif
    MPI_Comm dup;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    *reinterpret_cast<MPI_Comm*>(c->comm_) = dup;
    // Errors on our messages come back as codes (an exception naming the rank);
    // the world communicator keeps its default for anything else.
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    MPI_Comm_rank(dup, &c->rank_);
    MPI_Comm_size(dup, &c->size_);
    char host[MPI_MAX_PROCESSOR_NAME];
    int n = 0;
    MPI_Get_processor_name(host, &n);
    c->host_.assign(host, static_cast<size_t>(n));
    if (provided < MPI_THREAD_SERIALIZED && c->size_ > 1) {
        throw std::runtime_error("--pipeline: this MPI library does not allow calls from several threads "
                                 "(MPI_THREAD_SERIALIZED), which loom serve needs");
    }
    return c;
}

Comm::~Comm() {
    if (aborted_) return;
    MPI_Comm c = comm_of(comm_);
    MPI_Comm_free(&c);
    MPI_Finalize();
}

void Comm::fail(int peer, int err, const std::string& what) const {
    throw PeerError(peer, "pipeline: rank " + std::to_string(peer) + ": " + what + ": " + error_string(err));
}

Comm::Request Comm::isend(const void* data, size_t bytes, int dst, int tag) {
    Request r;
    const int err = MPI_Isend(data, count_of(bytes), MPI_BYTE, dst, tag, comm_of(comm_), &req_of(r.raw_));
    if (err != MPI_SUCCESS) fail(dst, err, "cannot send to it");
    r.active_ = true;
    r.peer_ = dst;
    return r;
}

Comm::Request Comm::irecv(void* data, size_t bytes, int src, int tag) {
    Request r;
    const int err = MPI_Irecv(data, count_of(bytes), MPI_BYTE, src, tag, comm_of(comm_), &req_of(r.raw_));
    if (err != MPI_SUCCESS) fail(src, err, "cannot receive from it");
    r.active_ = true;
    r.peer_ = src;
    return r;
}

bool Comm::test(Request& r) {
    if (!r.active_) return true;
    int done = 0;
    MPI_Status st;
    const int err = MPI_Test(&req_of(r.raw_), &done, &st);
    if (err != MPI_SUCCESS) {
        r.active_ = false;
        fail(r.peer_, err, "message failed");
    }
    if (done) r.active_ = false;
    return done != 0;
}

void Comm::wait(Request& r, double timeout_s, const std::string& what) {
    const double t0 = seconds();
    while (!test(r)) {
        const double dt = seconds() - t0;
        if (timeout_s > 0 && dt > timeout_s)
            throw PeerError(r.peer_, "pipeline: no answer from rank " + std::to_string(r.peer_) + " in " +
                                         std::to_string(static_cast<int>(timeout_s)) + " s (" + what +
                                         "): the rank is stuck or gone");
        if (dt > spin_s_) nap();
    }
}

std::vector<uint8_t> Comm::recv(int src, int tag, double timeout_s, const std::string& what) {
    const double t0 = seconds();
    MPI_Status st;
    for (;;) {
        int flag = 0;
        const int err = MPI_Iprobe(src, tag, comm_of(comm_), &flag, &st);
        if (err != MPI_SUCCESS) fail(src, err, "cannot receive from it (" + what + ")");
        if (flag) break;
        const double dt = seconds() - t0;
        if (timeout_s > 0 && dt > timeout_s)
            throw PeerError(src, "pipeline: no answer from rank " + std::to_string(src) + " in " +
                                     std::to_string(static_cast<int>(timeout_s)) + " s (" + what +
                                     "): the rank is stuck or gone");
        if (dt > spin_s_) nap();
    }
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    std::vector<uint8_t> buf(static_cast<size_t>(n));
    const int err = MPI_Recv(buf.data(), n, MPI_BYTE, src, tag, comm_of(comm_), MPI_STATUS_IGNORE);
    if (err != MPI_SUCCESS) fail(src, err, "cannot receive from it (" + what + ")");
    return buf;
}

void Comm::bcast(void* data, size_t bytes, int root) {
    const int err = MPI_Bcast(data, count_of(bytes), MPI_BYTE, root, comm_of(comm_));
    if (err != MPI_SUCCESS) fail(root, err, "broadcast failed");
}

void Comm::abort(int code) {
    aborted_ = true;
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; if it did
}

#endif

}  // namespace loom::dist
