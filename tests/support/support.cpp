#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "support/paths.h"

extern char** environ;

namespace pizza::test {

std::filesystem::path shared(const std::string& rel) {
  std::filesystem::path p = std::filesystem::path(PIZZA_SHARED_DIR) / rel;
  INFO("reference data missing: " << p.string());
  REQUIRE(std::filesystem::exists(p));
  return p;
}

CliResult run_cli(const std::vector<std::string>& args, const std::string& stdin_data,
                  const std::vector<std::string>& env) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  REQUIRE(::pipe2(in_pipe, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);

  std::vector<std::string> argv_s{PIZZA_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
  for (const auto& kv : env) {
    auto name = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env_s, [&](const std::string& s) { return s.rfind(name, 0) == 0; });
    if (kv.back() != '=' || kv.find('=') + 1 != kv.size()) env_s.push_back(kv);
  }
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  REQUIRE(rc == 0);

  CliResult res;
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (stdin_data.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    std::vector<pollfd> fds;
    if (out_open) fds.push_back({out_pipe[0], POLLIN, 0});
    if (err_open) fds.push_back({err_pipe[0], POLLIN, 0});
    if (in_fd >= 0) fds.push_back({in_fd, POLLOUT, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (auto& p : fds) {
      if (!p.revents) continue;
      if (p.fd == in_fd) {
        ssize_t n = ::write(in_fd, stdin_data.data() + written, stdin_data.size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        if (n < 0 || written == stdin_data.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      ssize_t n = ::read(p.fd, buf, sizeof buf);
      if (n <= 0) {
        (p.fd == out_pipe[0] ? out_open : err_open) = false;
      } else {
        (p.fd == out_pipe[0] ? res.out : res.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return res;
}

TempDir::TempDir() {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path();
  for (int i = 0; i < 100; ++i) {
    auto p = base / ("pizza-test-" + std::to_string(rd()));
    if (std::filesystem::create_directory(p)) {
      path_ = p;
      return;
    }
  }
  FAIL("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::filesystem::path& p, std::string_view data) {
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

ProcessResult run_command(const std::string& command_line) {
  ProcessResult res;
  std::string full = command_line + " 2>&1";
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) return res;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) res.output.append(buf.data(), n);
  int status = ::pclose(pipe);
  res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return res;
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

ProcessResult validate_json_schema(const std::filesystem::path& schema, const std::filesystem::path& doc) {
  const std::string script =
      "import json, sys, jsonschema\n"
      "schema = json.load(open(sys.argv[1]))\n"
      "cls = jsonschema.validators.validator_for(schema)\n"
      "cls.check_schema(schema)\n"
      "text = open(sys.argv[2]).read()\n"
      "try:\n"
      "    docs = [(0, json.loads(text))]\n"
      "except ValueError:\n"
      "    docs = [(n, json.loads(l)) for n, l in enumerate(text.split('\\n'), 1) if l.strip()]\n"
      "assert docs, 'no JSON document'\n"
      "for n, doc in docs:\n"
      "    try:\n"
      "        cls(schema).validate(doc)\n"
      "    except jsonschema.ValidationError as e:\n"
      "        sys.exit('line %d: %s' % (n, e))\n"
      "print('valid: %d' % len(docs))\n";
  return run_command("/usr/bin/python3 -c " + shell_quote(script) + " " + shell_quote(schema.string()) + " " +
                     shell_quote(doc.string()));
}

std::string chromium_dom(const std::filesystem::path& html, const std::string& fragment) {
  constexpr const char* kChromium = "/usr/bin/chromium";
  INFO("Debian's chromium is needed for the HTML tests (apt-get install chromium)");
  REQUIRE(std::filesystem::exists(kChromium));
  TempDir profile;
  const std::string cmd = std::string("timeout 120 ") + kChromium +
                          " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                          " --disable-background-networking --disable-component-update --disable-sync"
                          " --user-data-dir=" + shell_quote(profile.path().string()) +
                          " --dump-dom " + shell_quote("file://" + html.string() + fragment);
  auto res = run_command(cmd + " 2>/dev/null");
  INFO(res.output);
  REQUIRE(res.exit_code == 0);
  return res.output;
}

}  // namespace pizza::test
