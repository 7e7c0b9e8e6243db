// Hugging Face GPT-2 interop: stoch's Gpt as GPT-2's config.json and model.safetensors (what
// `transformers.GPT2LMHeadModel.from_pretrained` loads), and back. GPT-2 is stoch's Gpt with
// learned positions and biases; its Conv1D layers store weights [in, out], a Linear's transpose.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/torch/safetensors.h"
#include "models/gpt.h"

namespace stoch::models {

// Throws InputError naming the first key of `cfg` that GPT-2's format cannot express.
void check_gpt2_expressible(const LmConfig& cfg);

// GPT-2's config.json text for `cfg` (vocab_size resolved); bos and eos are `end_of_text`, the
// id of the vocabulary's <|endoftext|>, where it has one (null otherwise).
std::string gpt2_config_json(const LmConfig& cfg, std::optional<int64_t> end_of_text = {});

// tokenizer_config.json for a BPE whose special tokens are `specials` at `ids`: transformers
// then cuts them out as stoch does, and adds none of GPT-2's own (without it, AutoTokenizer
// added <|endoftext|> one past the vocabulary, and split stoch's specials into bytes).
std::string gpt2_tokenizer_config_json(const std::vector<std::string>& specials,
                                       const std::vector<int32_t>& ids, int64_t context);

// The model's weights under GPT-2's names, float32 on the CPU; lm_head is tied to wte, so absent.
TensorList gpt2_tensors(GptImpl& gpt);

// Checks that DIR/config.json describes the model `gpt` was built as, then copies the weights
// of DIR/model.safetensors into it. InputError naming the key and both values, or the file and
// tensor. `vocab_from_data`: the model's vocab_size came from the data (model.vocab_size 0).
void load_gpt2_weights(GptImpl& gpt, const std::string& dir, bool vocab_from_data);

}  // namespace stoch::models
