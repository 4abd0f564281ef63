// The CPU twins split their rows with at::parallel_for, a header template that runs the whole range on the
// calling thread unless the translation unit is compiled with OpenMP. This file is compiled with the flags
// semaim's libraries carry (OpenMP::OpenMP_CXX through semaim_pch), so it sees what the twins see.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <mutex>
#include <set>

namespace {

TEST(IntraOpThreads, ParallelForInSemaimCodeRunsOnTwoThreadsWhenAskedFor) {
  const int saved = at::get_num_threads();
  at::set_num_threads(2);
  std::mutex m;
  std::set<int> threads;
  at::parallel_for(0, 256, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(m);
    threads.insert(at::get_thread_num());
  });
  at::set_num_threads(saved);
  EXPECT_EQ(threads, (std::set<int>{0, 1})) << "at::parallel_for ran on " << threads.size() << " thread(s)";
}

}  // namespace
