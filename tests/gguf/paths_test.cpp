// Paths a careless or hostile user gives: the writer never replaces a device,
// FIFO or directory (its temp-file-and-rename would turn `-o /dev/null` into a
// plain file), writes through symlinks keeping the link, and the reader refuses a
// FIFO at once instead of waiting for a writer.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>

#include "gguf/gguf.h"

namespace loom::gguf {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

struct TempDir {
    fs::path dir;
    TempDir() {
        dir = fs::temp_directory_path() / ("loom_paths_" + std::to_string(::getpid()) + "_" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

Writer small_writer() {
    Writer w;
    w.set("general.architecture", Value::string("llama"));
    static const float data[4] = {1, 2, 3, 4};
    w.add_tensor("t", GgmlType::F32, {4}, data);
    return w;
}

TEST(WriterPaths, RefusesToReplaceACharacterDevice) {
    // Through a link to /dev/null, so that even without the check only the link
    // (never the device node) could be replaced: the link is resolved, then refused.
    TempDir t;
    const fs::path link = t.dir / "null.gguf";
    fs::create_symlink("/dev/null", link);
    const std::string e = error_of([&] { small_writer().write(link.string()); });
    EXPECT_EQ(e, "cannot write '" + link.string() + "': '/dev/null' is a character device, not a regular file "
                 "(refusing to replace it)");
    struct stat st {};
    ASSERT_EQ(::stat("/dev/null", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_TRUE(fs::is_symlink(link));
}

TEST(WriterPaths, RefusesToReplaceAFifoOrADirectory) {
    TempDir t;
    const fs::path fifo = t.dir / "fifo.gguf";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_EQ(error_of([&] { small_writer().write(fifo.string()); }),
              "cannot write '" + fifo.string() + "': it is a FIFO, not a regular file (refusing to replace it)");
    EXPECT_TRUE(fs::is_fifo(fifo));
    const fs::path dir = t.dir / "sub";
    fs::create_directory(dir);
    EXPECT_EQ(error_of([&] { small_writer().write(dir.string()); }),
              "cannot write '" + dir.string() + "': it is a directory, not a regular file (refusing to replace it)");
    EXPECT_TRUE(fs::is_directory(dir));
    // Nothing left behind: no temporary files.
    EXPECT_EQ(std::distance(fs::directory_iterator(t.dir), fs::directory_iterator()), 2);
}

TEST(WriterPaths, WritesThroughSymlinksKeepingThem) {
    TempDir t;
    fs::create_directory(t.dir / "real");
    const fs::path target = t.dir / "real" / "model.gguf";
    std::ofstream(target) << "old";
    const fs::path link1 = t.dir / "link1.gguf", link2 = t.dir / "link2.gguf";
    fs::create_symlink("real/model.gguf", link1);  // relative
    fs::create_symlink(link1, link2);              // a chain
    const Writer w = small_writer();
    w.write(link2.string());
    EXPECT_TRUE(fs::is_symlink(link1));
    EXPECT_TRUE(fs::is_symlink(link2));
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(target)));
    EXPECT_EQ(fs::file_size(target), w.to_bytes().size());
    EXPECT_EQ(File::open(link2.string())->find_tensor("t")->n_bytes, 16u);
    // A dangling link: its target is created, the link kept.
    const fs::path dangling = t.dir / "dangling.gguf";
    fs::create_symlink("real/new.gguf", dangling);
    w.write(dangling.string());
    EXPECT_TRUE(fs::is_symlink(dangling));
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(t.dir / "real" / "new.gguf")));
}

TEST(FileOpen, FifoIsRefusedWithoutWaiting) {
    TempDir t;
    const fs::path fifo = t.dir / "model.gguf";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    // Opened without a writer, a FIFO blocks forever: run it aside, bounded in time.
    auto fut = std::async(std::launch::async, [&] { return error_of([&] { File::open(fifo.string()); }); });
    if (fut.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
        std::ofstream unblock(fifo);  // lets the open return, so the test can end
        FAIL() << "File::open on a FIFO hangs";
    }
    EXPECT_EQ(fut.get(), fifo.string() + ": not a regular file (a FIFO): give a GGUF file");
}

}  // namespace
}  // namespace loom::gguf
