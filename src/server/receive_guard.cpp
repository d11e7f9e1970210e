#include "server/receive_guard.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace loom::server {

namespace {

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string key_of(const std::string& addr, int port) { return addr + "|" + std::to_string(port); }

// The port of an IPv4 or IPv6 address; -1 for other families.
int port_of(const sockaddr_storage& a) {
    if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
    if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
    return -1;
}

// The peer as cpp-httplib names it (getnameinfo, numeric host), or "" when not connected.
std::string peer_key(int fd) {
    sockaddr_storage p{};
    socklen_t n = sizeof p;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&p), &n) != 0) return "";
    char host[NI_MAXHOST];
    if (getnameinfo(reinterpret_cast<sockaddr*>(&p), n, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return "";
    return key_of(host, port_of(p));
}

struct Found {
    int fd;
    std::string key;
};

// The connected sockets of this process whose local port is `port`.
std::vector<Found> connections_to(int port) {
    std::vector<Found> out;
    DIR* d = opendir("/proc/self/fd");
    if (!d) return out;
    while (dirent* e = readdir(d)) {
        char* end = nullptr;
        const long fd = std::strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0') continue;
        sockaddr_storage a{};
        socklen_t n = sizeof a;
        if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&a), &n) != 0) continue;  // not a socket
        if (port_of(a) != port) continue;
        std::string key = peer_key(static_cast<int>(fd));  // "" for the listening socket
        if (!key.empty()) out.push_back({static_cast<int>(fd), std::move(key)});
    }
    closedir(d);
    return out;
}

}  // namespace

ReceiveGuard::ReceiveGuard(int port, double limit_s) : port_(port), limit_s_(limit_s), th_([this] { loop(); }) {}

ReceiveGuard::~ReceiveGuard() {
    {
        std::lock_guard lk(m_);
        stop_ = true;
    }
    cv_.notify_all();
    th_.join();
}

void ReceiveGuard::mark(const std::string& addr, int port, bool handling) {
    const double t = now_s();
    std::lock_guard lk(m_);
    Conn& c = conns_[key_of(addr, port)];
    if (c.since == 0 || !handling) c.since = t;
    c.handling = handling;
    c.touched = t;
}

void ReceiveGuard::handling(const std::string& addr, int port) { mark(addr, port, true); }
void ReceiveGuard::answered(const std::string& addr, int port) { mark(addr, port, false); }

void ReceiveGuard::loop() {
    const auto every = std::chrono::duration<double>(std::clamp(limit_s_ / 4, 0.05, 1.0));
    std::unique_lock lk(m_);
    while (!cv_.wait_for(lk, every, [this] { return stop_; })) {
        lk.unlock();
        scan();
        lk.lock();
    }
}

void ReceiveGuard::scan() {
    const auto found = connections_to(port_);  // outside the lock: a few syscalls per open file
    const double t = now_s();
    std::vector<Found> late;
    {
        std::lock_guard lk(m_);
        for (const Found& f : found) {
            Conn& c = conns_[f.key];
            // New: its first request starts arriving. Bytes not read yet: the server, not
            // the client, is slow (all HTTP threads busy): the clock waits.
            int unread = 0;
            if (c.since == 0 || (ioctl(f.fd, FIONREAD, &unread) == 0 && unread > 0)) c.since = t;
            c.touched = t;
            if (!c.handling && !c.timed_out && t - c.since > limit_s_) {
                c.timed_out = true;
                late.push_back(f);
            }
        }
        // Gone connections (a hook may have named a peer a scan has not seen yet: kept a while).
        for (auto it = conns_.begin(); it != conns_.end();)
            it = t - it->second.touched > 2 + limit_s_ ? conns_.erase(it) : std::next(it);
    }
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", limit_s_);
    const std::string body = std::string(R"x({"error":{"message":"the request did not arrive whole within )x") + secs +
                             R"x( s (--receive-timeout)","type":"invalid_request_error","param":null,"code":"request_timeout"}})x";
    const std::string resp = "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    for (const Found& f : late) {
        // The descriptor may have been closed and reused since the listing: act only on
        // the same peer (a new connection from the same address and port is impossible
        // this soon: TIME_WAIT).
        if (peer_key(f.fd) != f.key) continue;
        (void)!send(f.fd, resp.data(), resp.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(f.fd, SHUT_RDWR);  // the HTTP thread's recv returns; it closes the socket
        closed_++;
    }
}

}  // namespace loom::server
