// loom serve: a deadline for each request to arrive whole (--receive-timeout).
//
// cpp-httplib's read timeout applies to each recv, so a client that sends its headers
// or its body a byte every few seconds ("slowloris") holds an HTTP thread for hours,
// and as many such clients as threads stop the server answering anyone. The library
// never shows the server its connections' sockets, so ReceiveGuard finds them itself:
// once a second (a quarter of the limit when shorter) it lists the process's sockets
// whose local port is the server's, keyed by the peer's address and port (what
// httplib::Request::remote_addr and remote_port say). A connection is "receiving" from
// the moment it is first seen and again after each response is written (answered), and
// "handling" while a route's handler runs (handling). While its socket holds bytes the
// server has not read yet (every HTTP thread busy), the slowness is the server's and the
// clock restarts. One receiving longer than the limit gets a 408 with a JSON error body
// and is shut down; the HTTP thread that was waiting on it is freed.
#pragma once
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace loom::server {

class ReceiveGuard {
public:
    // Starts watching the connections to `port` (limit_s > 0).
    ReceiveGuard(int port, double limit_s);
    ~ReceiveGuard();
    ReceiveGuard(const ReceiveGuard&) = delete;
    ReceiveGuard& operator=(const ReceiveGuard&) = delete;

    // The peer's request arrived whole: its handler runs (no deadline while it does).
    void handling(const std::string& addr, int port);
    // The response to the peer is written: its next request starts arriving now.
    void answered(const std::string& addr, int port);
    // Connections closed for taking too long so far.
    int closed() const { return closed_.load(); }

private:
    struct Conn {
        bool handling = false;
        double since = 0;      // when the current request started arriving
        double touched = 0;    // last seen by a scan or a hook
        bool timed_out = false;
    };
    void loop();
    void scan();
    void mark(const std::string& addr, int port, bool handling);

    const int port_;
    const double limit_s_;
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::map<std::string, Conn> conns_;  // key: "addr|port" of the peer
    std::atomic<int> closed_{0};
    std::thread th_;
};

}  // namespace loom::server
