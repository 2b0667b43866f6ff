// Include this instead of <catch2/catch.hpp> in tests that use libtorch. libtorch pulls in
// glog, whose CHECK() aborts the process instead of reporting to Catch (and is not counted);
// torch is included first so that its CHECK can be dropped before Catch defines its own.
#pragma once

#include <torch/torch.h>
#undef CHECK
#include <catch2/catch.hpp>
