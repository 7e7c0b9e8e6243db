// How fast the lm task's data path reads windows from a token folder (any format stoch reads):
// tokens per second through TokenArraySource::window, random and sequential, from the page
// cache. Prints one Markdown row per order.
// usage: token_read_bench DIR [--context=1024] [--seconds=3]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "data/token_files.h"

int main(int argc, char** argv) {
  using namespace stoch::data;
  if (argc < 2) {
    std::fprintf(stderr, "usage: token_read_bench DIR [--context=N] [--seconds=S]\n");
    return 2;
  }
  const std::string dir = argv[1];
  int64_t context = 1024;
  double seconds = 3.0;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--context=", 0) == 0) context = std::atoll(a.c_str() + 10);
    if (a.rfind("--seconds=", 0) == 0) seconds = std::atof(a.c_str() + 10);
  }
  try {
    std::printf(
        "| order | shards | tokens/s (millions) | MB/s of ids |\n| --- | --- | --- | --- |\n");
    for (auto order : {WindowOrder::kRandom, WindowOrder::kSequential}) {
      auto src = open_token_dir(dir, "auto", 1, 2, order);
      std::vector<int32_t> w(static_cast<size_t>(context + 1));
      const auto t0 = std::chrono::steady_clock::now();
      uint64_t i = 0;
      double elapsed = 0;
      int64_t sink = 0;
      while (elapsed < seconds) {
        for (int k = 0; k < 64; ++k) {
          src->window(Split::kTrain, i++, context + 1, w.data());
          sink += w[static_cast<size_t>(k % context)];
        }
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      const double tps = static_cast<double>(i) * static_cast<double>(context + 1) / elapsed;
      const TokenFolder f = open_token_folder(dir, "auto");
      const double width = f.vocab_size <= 65536 ? 2.0 : 4.0;
      std::printf("| %s | %zu | %.1f | %.0f |%s\n",
                  order == WindowOrder::kRandom ? "random" : "sequential", f.train.shard_count(),
                  tps / 1e6, tps * width / 1e6, sink == -1 ? " " : "");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
