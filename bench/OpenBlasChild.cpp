//===- OpenBlasChild.cpp - the OpenBLAS baseline with OpenBLAS's best kernel -===//

#include "OpenBlasChild.h"
#include "EagerBaseline.h"

#include "moe_runtime.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" char *openblas_get_corename(void);
extern "C" void openblas_set_num_threads(int);
extern char **environ;

namespace moe::bench {

static const char *const kOverrides[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"};

std::string openblasOverrides() {
  std::string out;
  for (const char *name : kOverrides)
    if (const char *v = std::getenv(name))
      out += (out.empty() ? "" : " ") + std::string(name) + "=" + v;
  return out;
}

static std::string line(const llvm::json::Value &v) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << v << '\n';
  return s;
}

namespace {
/// The server's state: the case set up last.
struct Server {
  Shape shape;
  CaseInputs inputs;
  std::unique_ptr<OpenBlasBaseline> baseline;
  std::vector<float> out;

  llvm::json::Value setup(llvm::StringRef name, int64_t checkValues) {
    for (const Shape &s : benchShapes())
      if (s.name == name)
        shape = s;
    if (shape.name != name)
      return llvm::json::Object{{"error", "no case " + name.str()}};
    inputs = makeCaseInputs(shape);
    baseline = std::make_unique<OpenBlasBaseline>(shape);
    out.assign(shape.t * shape.h, 0.0f);
    baseline->run(inputs, out.data());
    llvm::json::Array first;
    for (int64_t i = 0; i < std::min<int64_t>(checkValues, int64_t(out.size())); ++i)
      first.push_back(double(out[i]));
    return llvm::json::Object{{"out", std::move(first)}};
  }

  llvm::json::Value block(int64_t calls) {
    if (!baseline)
      return llvm::json::Object{{"error", "no case set up"}};
    llvm::json::Array us;
    for (int64_t i = 0; i <= calls; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      baseline->run(inputs, out.data());
      double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (i > 0)
        us.push_back(t * 1e6);
    }
    return llvm::json::Object{{"us", std::move(us)}};
  }
};
} // namespace

int runOpenBlasServer() {
  openblas_set_num_threads(moe_get_num_threads());
  std::fputs(line(llvm::json::Object{{"core", openblas_get_corename()}}).c_str(), stdout);
  std::fflush(stdout);
  Server server;
  char *buf = nullptr;
  size_t cap = 0;
  while (getline(&buf, &cap, stdin) > 0) {
    llvm::Expected<llvm::json::Value> request = llvm::json::parse(llvm::StringRef(buf).trim());
    llvm::json::Value reply = llvm::json::Object{{"error", "bad request"}};
    if (!request) {
      llvm::consumeError(request.takeError());
    } else if (const llvm::json::Object *o = request->getAsObject()) {
      if (auto name = o->getString("case"))
        reply = server.setup(*name, o->getInteger("check_values").value_or(0));
      else if (auto calls = o->getInteger("block"))
        reply = server.block(*calls);
    }
    std::fputs(line(reply).c_str(), stdout);
    std::fflush(stdout);
  }
  std::free(buf);
  return 0;
}

std::unique_ptr<OpenBlasChild> OpenBlasChild::start(std::string &error) {
  // A child that dies must give an error here, not kill us on a write.
  signal(SIGPIPE, SIG_IGN);
  std::vector<char *> env;
  for (char **e = environ; *e; ++e) {
    bool drop = false;
    for (const char *name : kOverrides)
      drop |= std::strncmp(*e, name, std::strlen(name)) == 0 && (*e)[std::strlen(name)] == '=';
    if (!drop)
      env.push_back(*e);
  }
  env.push_back(nullptr);
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return nullptr;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  for (int fd : {in[0], in[1], out[0], out[1]})
    posix_spawn_file_actions_addclose(&actions, fd);
  char exe[] = "/proc/self/exe", flag[] = "--openblas-server";
  char *argv[] = {exe, flag, nullptr};
  std::unique_ptr<OpenBlasChild> child(new OpenBlasChild);
  int rc = posix_spawn(&child->pid, exe, &actions, nullptr, argv, env.data());
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  child->toChild = fdopen(in[1], "w");
  child->fromChild = fdopen(out[0], "r");
  if (rc != 0) {
    child->pid = -1;
    error = std::string("re-executing moe-bench for the OpenBLAS baseline: ") + std::strerror(rc);
    return nullptr;
  }
  std::string hello;
  if (!child->exchange("", hello, error))
    return nullptr;
  llvm::Expected<llvm::json::Value> v = llvm::json::parse(hello);
  const llvm::json::Object *o = v ? v->getAsObject() : nullptr;
  if (!o || !o->getString("core")) {
    if (!v)
      llvm::consumeError(v.takeError());
    error = "OpenBLAS baseline child: unexpected greeting " + hello;
    return nullptr;
  }
  child->coreName = o->getString("core")->str();
  return child;
}

OpenBlasChild::~OpenBlasChild() {
  if (toChild)
    fclose(toChild); // the server ends at end of input
  if (fromChild)
    fclose(fromChild);
  if (pid > 0)
    waitpid(pid, nullptr, 0);
}

/// Sends `request` (none when empty) and reads one reply line.
bool OpenBlasChild::exchange(const std::string &request, std::string &reply,
                             std::string &error) {
  if (!request.empty() && (std::fputs(request.c_str(), toChild) < 0 || std::fflush(toChild) != 0)) {
    error = "OpenBLAS baseline child: the pipe closed";
    return false;
  }
  char *buf = nullptr;
  size_t cap = 0;
  ssize_t n = getline(&buf, &cap, fromChild);
  reply = n > 0 ? std::string(buf, n) : std::string();
  std::free(buf);
  if (n <= 0) {
    error = "OpenBLAS baseline child: no reply (it exited?)";
    return false;
  }
  return true;
}

/// The reply's object, or false with its "error" (or a parse error).
static bool parseReply(const std::string &reply, llvm::json::Value &value, std::string &error) {
  llvm::Expected<llvm::json::Value> v = llvm::json::parse(llvm::StringRef(reply).trim());
  if (!v) {
    error = "OpenBLAS baseline child: " + llvm::toString(v.takeError());
    return false;
  }
  value = std::move(*v);
  const llvm::json::Object *o = value.getAsObject();
  if (!o || o->get("error")) {
    error = "OpenBLAS baseline child: " + reply;
    return false;
  }
  return true;
}

bool OpenBlasChild::setupCase(const std::string &name, int64_t checkValues,
                              std::vector<float> &firstValues, std::string &error) {
  std::string reply;
  llvm::json::Value v = nullptr;
  llvm::json::Object request{{"case", name}, {"check_values", checkValues}};
  if (!exchange(line(std::move(request)), reply, error) || !parseReply(reply, v, error))
    return false;
  const llvm::json::Array *out = v.getAsObject()->getArray("out");
  if (!out) {
    error = "OpenBLAS baseline child: no output in " + reply;
    return false;
  }
  firstValues.clear();
  for (const llvm::json::Value &x : *out)
    firstValues.push_back(float(x.getAsNumber().value_or(NAN)));
  return true;
}

bool OpenBlasChild::timeBlock(int calls, std::vector<double> &us, std::string &error) {
  std::string reply;
  llvm::json::Value v = nullptr;
  if (!exchange(line(llvm::json::Object{{"block", calls}}), reply, error) ||
      !parseReply(reply, v, error))
    return false;
  const llvm::json::Array *times = v.getAsObject()->getArray("us");
  if (!times) {
    error = "OpenBLAS baseline child: no times in " + reply;
    return false;
  }
  for (const llvm::json::Value &x : *times)
    us.push_back(x.getAsNumber().value_or(NAN));
  return true;
}

} // namespace moe::bench
