// Thread settings of the runtime: the kernel-thread guard the parallel gradient passes use.
#include <future>

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
