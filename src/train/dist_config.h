// The `dist` section: how the ranks of a data-parallel run talk and notice each other's loss.
#pragma once

#include <string>

#include "core/config_schema.h"

namespace stoch::train {

struct DistConfig {
  std::string backend = "auto";
  double timeout_s = 300;
  double join_timeout_s = 300;
  std::string shard = "none";

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("backend", backend,
      "collectives of a run with several ranks: auto (NCCL on CUDA, Gloo on the CPU), gloo or nccl",
      Spec().one_of({"auto", "gloo", "nccl"}));
    v("timeout_s", timeout_s,
      "a rank silent this long (dead, stopped or cut off) ends every rank with exit 1; "
      "rank 0 evaluating or writing a checkpoint stays alive",
      Spec().at_least(0.5).at_most(1e7).on_resume().changes_no_result());
    v("join_timeout_s", join_timeout_s,
      "how long the ranks wait for each other to start (hosts start at different moments); "
      "then each exits 1 naming the address",
      Spec().at_least(0.5).at_most(1e7).on_resume().changes_no_result());
    v("shard", shard,
      "none: every rank holds all of AdamW's state; optimizer: each holds 1/W of it (ZeRO-1); "
      "gradients: also receives only its 1/W of the summed gradients (ZeRO-2)",
      Spec().one_of({"none", "optimizer", "gradients"}).on_resume());
  }
};

}  // namespace stoch::train
