// Thread settings of the runtime: the kernel-thread guard the parallel gradient passes use.
#include <future>

#include <sched.h>

#include "blas/blas.h"
#include "model/model.h"
#include "support_torch/reference.h"
// libtorch pulls in glog, whose CHECK() aborts the process instead of reporting to Catch;
// drop it before Catch defines its own.
#undef CHECK
#include <catch2/catch.hpp>

using namespace pizza;

TEST_CASE("KernelThreads sets libtorch's and OpenBLAS's threads for its scope, threads started in it included") {
  torch::set_num_threads(2);
  blas::set_threads(2);
  {
    KernelThreads serial(1);
    CHECK(torch::get_num_threads() == 1);
    CHECK(blas::probe().threads == 1);
    // A thread started inside the scope sizes its libtorch pool from the guard's count: the
    // concurrent backward passes must not each start a full-size pool.
    auto in_new_thread = std::async(std::launch::async, [] {
      torch::ones({1 << 16}).sum();  // the first parallel kernel initialises this thread's pool
      return torch::get_num_threads();
    });
    CHECK(in_new_thread.get() == 1);
  }
  CHECK(torch::get_num_threads() == 2);
  CHECK(blas::probe().threads == 2);
}

TEST_CASE("the default thread count is the number of CPUs in the process's affinity mask") {
  cpu_set_t all;
  REQUIRE(sched_getaffinity(0, sizeof all, &all) == 0);
  const int allowed = CPU_COUNT(&all);
  CHECK(apply_runtime({}).threads == allowed);
  // Pinned to one CPU (as `taskset -c 0` does), the default is one thread, not every online CPU.
  int first = 0;
  while (!CPU_ISSET(first, &all)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
  const int pinned = apply_runtime({}).threads;
  REQUIRE(sched_setaffinity(0, sizeof all, &all) == 0);
  CHECK(pinned == 1);
  CHECK(torch::get_num_threads() == 1);
  CHECK(blas::probe().threads == 1);
  apply_runtime({});  // back to the process's default
}
