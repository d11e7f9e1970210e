// `loom serve` as a child process on a free loopback port (bin/loom of this build),
// and what /proc says about a process: for the tests that check the command's
// limits and for the soak.
#pragma once
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace loom::test {

inline std::string loom_binary() { return std::string(LOOM_BIN_DIR) + "/loom"; }

class ServeProcess {
public:
    // Starts `loom serve --host 127.0.0.1 --port 0 ARGS...` and waits (up to timeout_s)
    // until /health answers 200. ok() is false when it did not come up (see log()).
    explicit ServeProcess(const std::vector<std::string>& args, double timeout_s = 120) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) return;
        std::vector<std::string> argv = {loom_binary(), "serve", "--host", "127.0.0.1", "--port", "0"};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> av;  // built before fork: the child only calls async-signal-safe functions
        for (auto& a : argv) av.push_back(a.data());
        av.push_back(nullptr);
        pid_ = fork();
        if (pid_ == 0) {
            dup2(fds[1], 2);
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
            execv(av[0], av.data());
            _exit(127);
        }
        close(fds[1]);
        if (pid_ < 0) {
            close(fds[0]);
            return;
        }
        reader_ = std::thread([this, fd = fds[0]] {
            char buf[4096];
            ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) > 0) {
                std::lock_guard lk(m_);
                log_.append(buf, static_cast<size_t>(n));
            }
            close(fd);
        });
        const auto t_end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        const std::regex re("listening on http://127\\.0\\.0\\.1:([0-9]+)");
        while (std::chrono::steady_clock::now() < t_end && exited() < 0) {
            if (port_ == 0) {
                std::smatch m;
                const std::string l = log();
                if (std::regex_search(l, m, re)) port_ = std::stoi(m[1]);
            }
            if (port_ > 0) {
                httplib::Client c("127.0.0.1", port_);
                c.set_connection_timeout(1, 0);
                auto r = c.Get("/health");
                if (r && r->status == 200) {
                    ok_ = true;
                    break;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    ~ServeProcess() { stop(); }
    ServeProcess(const ServeProcess&) = delete;
    ServeProcess& operator=(const ServeProcess&) = delete;

    bool ok() const { return ok_; }
    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    std::string log() const {
        std::lock_guard lk(m_);
        return log_;
    }
    // The exit status once it ended by itself, else -1 (does not wait).
    int exited() {
        if (pid_ <= 0) return 127;
        if (status_ >= 0) return status_;
        int st = 0;
        if (waitpid(pid_, &st, WNOHANG) == pid_) status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
    }
    // SIGTERM, then SIGKILL after 20 s; returns the exit status.
    int stop() {
        if (pid_ > 0 && exited() < 0) {
            kill(pid_, SIGTERM);
            for (int i = 0; i < 2000 && exited() < 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
            if (exited() < 0) {
                kill(pid_, SIGKILL);
                int st = 0;
                waitpid(pid_, &st, 0);
                status_ = 137;
            }
        }
        if (reader_.joinable()) reader_.join();
        return status_;
    }
    httplib::Client client(int timeout_s = 60) const {
        httplib::Client c("127.0.0.1", port_);
        c.set_connection_timeout(5, 0);
        c.set_read_timeout(timeout_s, 0);
        c.set_write_timeout(timeout_s, 0);
        return c;
    }

private:
    pid_t pid_ = -1;
    int port_ = 0, status_ = -1;
    bool ok_ = false;
    std::thread reader_;
    mutable std::mutex m_;
    std::string log_;
};

// What /proc tells about a process.
struct ProcStats {
    long rss_kb = -1;   // VmRSS
    int threads = -1;   // Threads
    int fds = -1;       // entries of /proc/PID/fd
};

inline ProcStats proc_stats(pid_t pid) {
    ProcStats s;
    std::ifstream st("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(st, line)) {
        if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::stol(line.substr(6));
        else if (line.rfind("Threads:", 0) == 0) s.threads = std::stoi(line.substr(8));
    }
    if (DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
        s.fds = 0;
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') s.fds++;
        closedir(d);
    }
    return s;
}

}  // namespace loom::test
