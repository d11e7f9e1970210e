// --receive-timeout (ServerOptions::receive_timeout_s, server/receive_guard.h): a request
// that arrives too slowly, headers or body ("slowloris"), gets 408 and its connection
// is closed, freeing the HTTP thread; requests being answered (long streams) and
// keep-alive connections between requests are not cut.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "harness.h"

using namespace loom;
using namespace loom::test;
using nlohmann::json;

namespace {

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

struct Slow {
    std::string received;
    double answered_after = -1;  // seconds from the start to the first response byte
    bool closed = false;
};

// Sends `head` at once, then `drip` a byte every 200 ms (as long as the server reads),
// for at most `seconds`; collects what comes back.
Slow slow_client(int port, const std::string& head, const std::string& drip, double seconds) {
    Slow out;
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return out;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    const double t0 = now_s();
    (void)!send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    size_t next = 0;
    double next_at = t0;
    char buf[4096];
    while (now_s() - t0 < seconds) {
        if (!out.closed && next < drip.size() && now_s() >= next_at) {
            if (send(fd, drip.data() + next, 1, MSG_NOSIGNAL) == 1) next++;
            next_at = now_s() + 0.2;
        }
        const ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
            if (out.received.empty()) out.answered_after = now_s() - t0;
            out.received.append(buf, static_cast<size_t>(r));
        } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            out.closed = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    close(fd);
    return out;
}

struct GuardedServer {
    TokenizerFixture tf;
    FakeEngine eng;
    std::unique_ptr<server::HttpServer> http;
    int port = 0;
    GuardedServer(double receive_timeout_s, int http_threads) {
        server::ServerOptions o;
        o.port = 0;
        o.http_threads = http_threads;
        o.receive_timeout_s = receive_timeout_s;
        http = std::make_unique<server::HttpServer>(o);
        port = http->start();
        http->set_model(model_info(*tf.tok, eng));
    }
};

}  // namespace

// Two slow clients take both HTTP threads; each gets a 408 after the limit (headers
// dripping, or a body dripping), and the server answers others again.
TEST(ServerReceive, SlowHeadersAndBodiesGet408AndFreeTheirThreads) {
    LOOM_REQUIRE_SHARED();
    GuardedServer s(1.0, 2);
    const std::string body = R"({"prompt":"hello","max_tokens":2})";
    Slow headers, bodies;
    std::thread a([&] {
        headers = slow_client(s.port, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n", std::string(100, 'X'), 8);
    });
    std::thread b([&] {
        const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
        bodies = slow_client(s.port, head, body, 8);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // Both threads are held: a third request waits until one of them is cut.
    httplib::Client c("127.0.0.1", s.port);
    c.set_read_timeout(10, 0);
    const double t0 = now_s();
    auto h = c.Get("/health");
    const double waited = now_s() - t0;
    a.join();
    b.join();
    for (const Slow* sl : {&headers, &bodies}) {
        EXPECT_EQ(sl->received.rfind("HTTP/1.1 408 ", 0), 0u) << sl->received;
        EXPECT_GE(sl->answered_after, 0.9);
        EXPECT_LT(sl->answered_after, 4.0);
        EXPECT_TRUE(sl->closed);
        const auto j = json::parse(sl->received.substr(sl->received.find("\r\n\r\n") + 4), nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << sl->received;
        EXPECT_EQ(j["error"]["code"], "request_timeout");
        EXPECT_NE(j["error"]["message"].get<std::string>().find("--receive-timeout"), std::string::npos);
    }
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 200);
    EXPECT_LT(waited, 5.0);
}

// A stream and a non-streamed answer taking more than twice the limit are not cut, nor
// is a keep-alive connection that sends its next request promptly (margins for
// sanitizer builds on a loaded machine: the limit is 1 s, the gaps 0.1 s).
TEST(ServerReceive, LongAnswersAndKeepAliveAreNotCut) {
    LOOM_REQUIRE_SHARED();
    GuardedServer s(1.0, 4);
    s.eng.step_ms = 40;  // 60 tokens: 2.4 s
    const double t0 = now_s();
    const auto r = post_sse(s.port, "/v1/completions", R"({"prompt":"hello","max_tokens":60,"stream":true})");
    EXPECT_GT(now_s() - t0, 2.0);
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_GE(r.data.size(), 2u);
    EXPECT_EQ(r.data.back(), "[DONE]");
    httplib::Client c("127.0.0.1", s.port);
    c.set_keep_alive(true);
    c.set_read_timeout(10, 0);
    for (int i = 0; i < 3; ++i) {
        const int n = i == 0 ? 60 : 5;
        auto p = c.Post("/v1/completions", R"({"prompt":"hello","max_tokens":)" + std::to_string(n) + "}", "application/json");
        ASSERT_TRUE(p) << "request " << i;
        EXPECT_EQ(p->status, 200) << p->body;
        EXPECT_EQ(json::parse(p->body)["usage"]["completion_tokens"], n);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

// 0 turns the guard off: a slow client is left alone (only the per-read timeout applies).
TEST(ServerReceive, ZeroMeansNoLimit) {
    LOOM_REQUIRE_SHARED();
    GuardedServer s(0, 2);
    const Slow sl = slow_client(s.port, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n", std::string(100, 'X'), 2.5);
    EXPECT_TRUE(sl.received.empty()) << sl.received;
    EXPECT_FALSE(sl.closed);
}
