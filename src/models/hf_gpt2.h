// Hugging Face GPT-2 interop: stoch's Gpt as GPT-2's config.json and model.safetensors (what
// `transformers.GPT2LMHeadModel.from_pretrained` loads), and back. GPT-2 is stoch's Gpt with
// learned positions and biases; its Conv1D layers store weights [in, out], a Linear's transpose.
#pragma once

#include <string>

#include "core/torch/safetensors.h"
#include "models/gpt.h"

namespace stoch::models {

// Throws InputError naming the first key of `cfg` that GPT-2's format cannot express.
void check_gpt2_expressible(const LmConfig& cfg);

// GPT-2's config.json text for `cfg` (vocab_size resolved).
std::string gpt2_config_json(const LmConfig& cfg);

// The model's weights under GPT-2's names, float32 on the CPU; lm_head is tied to wte, so absent.
TensorList gpt2_tensors(GptImpl& gpt);

// Checks that DIR/config.json describes the model `gpt` was built as, then copies the weights
// of DIR/model.safetensors into it. InputError naming the key and both values, or the file and
// tensor. `vocab_from_data`: the model's vocab_size came from the data (model.vocab_size 0).
void load_gpt2_weights(GptImpl& gpt, const std::string& dir, bool vocab_from_data);

}  // namespace stoch::models
