#include "models/hf_gpt2.h"

#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"

namespace stoch::models {
namespace {

constexpr const char* kPrefix = "transformer.";

// One GPT-2 tensor and the stoch parameter it holds. Conv1D weights are stored [in, out].
struct Gpt2Tensor {
  std::string name;  // without the "transformer." prefix (lm_head aside, every name has it)
  torch::Tensor param;
  bool conv1d = false;
};

std::vector<Gpt2Tensor> gpt2_layout(GptImpl& gpt) {
  std::vector<Gpt2Tensor> out{{"wte.weight", gpt.wte->weight}, {"wpe.weight", gpt.wpe->weight}};
  const auto norm = [&](const std::string& name, NormImpl& n) {
    out.push_back({name + ".weight", n.weight});
    out.push_back({name + ".bias", n.bias});
  };
  const auto conv1d = [&](const std::string& name, torch::nn::LinearImpl& l) {
    out.push_back({name + ".weight", l.weight, true});
    out.push_back({name + ".bias", l.bias});
  };
  for (size_t i = 0; i < gpt.blocks->size(); ++i) {
    auto b = gpt.blocks->ptr<BlockImpl>(i);
    const std::string h = stoch::str("h.", i, ".");
    norm(h + "ln_1", *b->ln1);
    // qkv's output rows are q, k, v one after another, as GPT-2's c_attn splits them.
    conv1d(h + "attn.c_attn", *b->attn->qkv);
    conv1d(h + "attn.c_proj", *b->attn->proj);
    norm(h + "ln_2", *b->ln2);
    conv1d(h + "mlp.c_fc", *b->fc);
    conv1d(h + "mlp.c_proj", *b->fc_proj);
  }
  norm("ln_f", *gpt.ln_f);
  return out;
}

const char* hf_activation(const std::string& activation) {
  return activation == "gelu_tanh" ? "gelu_new" : "gelu";
}

// GPT-2's activation_function as model.activation; "" when stoch has none like it.
std::string stoch_activation(const std::string& hf) {
  if (hf == "gelu") return "gelu";
  // gelu_pytorch_tanh is torch's tanh approximation, the same function as gelu_new.
  if (hf == "gelu_new" || hf == "gelu_pytorch_tanh") return "gelu_tanh";
  return "";
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw InputError(
        stoch::str("model.init_from: ", path, ": cannot open (expected GPT-2's config.json)"));
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw InputError(stoch::str(path, ": not valid JSON: ", e.what()));
  }
}

// A config.json field with GPT2Config's default when absent.
template <class T>
T field(const nlohmann::json& j, const std::string& path, const char* key, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const std::exception&) {
    throw InputError(stoch::str(path, ": ", key, " has the wrong type: ", j[key].dump()));
  }
}

void check_agrees(const LmConfig& cfg, const std::string& path, bool vocab_from_data) {
  const auto j = read_json(path);
  const auto mismatch = [&](const std::string& key, const auto& ours, const char* theirs,
                            const auto& value) {
    throw InputError(stoch::str("model.", key, ": ", ours, " but ", path, " has ", theirs, " ",
                                value, " (model.init_from needs the same architecture)"));
  };
  const auto type = field<std::string>(j, path, "model_type", "gpt2");
  if (type != "gpt2")
    throw InputError(
        stoch::str("model.init_from: ", path, " has model_type ", type, ", expected gpt2"));
  if (cfg.positions != "learned")
    throw InputError(stoch::str("model.positions: ", cfg.positions, " but ", path,
                                " is GPT-2, whose positions are learned"));
  if (!cfg.bias)
    throw InputError(
        stoch::str("model.bias: false but ", path, " is GPT-2, which has biases in every layer"));
  // A smaller vocabulary fills the first rows of a padded one (stoch's export drops the padding,
  // 50304 over GPT-2's 50257): the rows past it keep their initial values, ids no text has.
  const auto vocab = field<int64_t>(j, path, "vocab_size", 50257);
  if (cfg.vocab_size < vocab || (vocab_from_data && cfg.vocab_size != vocab))
    mismatch("vocab_size",
             vocab_from_data ? stoch::str("0, the data's ", cfg.vocab_size)
                             : std::to_string(cfg.vocab_size),
             "vocab_size", vocab);
  const auto positions = field<int64_t>(j, path, "n_positions", 1024);
  if (cfg.context > positions) mismatch("context", cfg.context, "n_positions", positions);
  const auto n_layer = field<int64_t>(j, path, "n_layer", 12);
  if (cfg.n_layer != n_layer) mismatch("n_layer", cfg.n_layer, "n_layer", n_layer);
  const auto n_head = field<int64_t>(j, path, "n_head", 12);
  if (cfg.n_head != n_head) mismatch("n_head", cfg.n_head, "n_head", n_head);
  const auto n_embd = field<int64_t>(j, path, "n_embd", 768);
  if (cfg.d_model != n_embd) mismatch("d_model", cfg.d_model, "n_embd", n_embd);
  const auto n_inner = field<int64_t>(j, path, "n_inner", 4 * n_embd);  // null: 4 * n_embd
  if (cfg.mlp_ratio * cfg.d_model != n_inner)
    mismatch("mlp_ratio", stoch::str(cfg.mlp_ratio, " (", cfg.mlp_ratio * cfg.d_model, " wide)"),
             "n_inner", n_inner);
  const auto act = field<std::string>(j, path, "activation_function", "gelu_new");
  const std::string ours = stoch_activation(act);
  if (ours.empty())
    throw InputError(stoch::str(path, ": activation_function ", act,
                                " has no stoch equivalent (model.activation: gelu is GPT-2's gelu, "
                                "gelu_tanh its gelu_new)"));
  if (cfg.activation != ours)
    mismatch("activation", cfg.activation, "activation_function",
             act + ", model.activation " + ours);
  // Attention and normalisation variants stoch's Gpt does not have.
  const auto eps = field<double>(j, path, "layer_norm_epsilon", 1e-5);
  if (eps != 1e-5)
    throw InputError(
        stoch::str(path, ": layer_norm_epsilon ", eps, "; stoch's LayerNorm uses 1e-5"));
  if (!field<bool>(j, path, "scale_attn_weights", true))
    throw InputError(
        stoch::str(path, ": scale_attn_weights false; stoch scales by 1/sqrt(d_head)"));
  if (field<bool>(j, path, "scale_attn_by_inverse_layer_idx", false))
    throw InputError(stoch::str(path,
                                ": scale_attn_by_inverse_layer_idx true; stoch has no such "
                                "scaling"));
}

bool is_causal_mask_buffer(const std::string& name) {
  // Older GPT-2 files carry each layer's causal mask as h.N.attn.bias / masked_bias.
  const auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".attn.bias") || ends(".attn.masked_bias");
}

}  // namespace

void check_gpt2_expressible(const LmConfig& cfg) {
  const auto refuse = [](const std::string& what) {
    throw InputError(what + " (GPT-2's format cannot express it)");
  };
  if (!registry<LmArchEntry>().get(cfg.arch, "model.arch").gpt2_format)
    refuse(stoch::str("model.arch: ", cfg.arch, ", GPT-2 is a gpt"));
  if (cfg.positions != "learned")
    refuse(stoch::str("model.positions: ", cfg.positions, ", GPT-2 has learned positions only"));
  if (!cfg.bias) refuse("model.bias: false, GPT-2 has biases in every linear layer and LayerNorm");
}

std::string gpt2_config_json(const LmConfig& cfg, std::optional<int64_t> end_of_text) {
  check_gpt2_expressible(cfg);
  const nlohmann::ordered_json eot_id =
      end_of_text ? nlohmann::ordered_json(*end_of_text) : nlohmann::ordered_json(nullptr);
  nlohmann::ordered_json j = {{"architectures", {"GPT2LMHeadModel"}},
                              {"model_type", "gpt2"},
                              {"vocab_size", cfg.vocab_size},
                              {"n_positions", cfg.context},
                              {"n_embd", cfg.d_model},
                              {"n_layer", cfg.n_layer},
                              {"n_head", cfg.n_head},
                              {"n_inner", cfg.mlp_ratio * cfg.d_model},
                              {"activation_function", hf_activation(cfg.activation)},
                              // stoch drops out in the same three places: embeddings, attention
                              // weights, residual branches.
                              {"embd_pdrop", cfg.dropout},
                              {"attn_pdrop", cfg.dropout},
                              {"resid_pdrop", cfg.dropout},
                              {"layer_norm_epsilon", 1e-5},
                              {"initializer_range", cfg.init_std},
                              {"scale_attn_weights", true},
                              {"scale_attn_by_inverse_layer_idx", false},
                              {"reorder_and_upcast_attn", false},
                              {"tie_word_embeddings", true},
                              // As tokenizer_config.json names them: generate() stops there.
                              {"bos_token_id", eot_id},
                              {"eos_token_id", eot_id},
                              {"dtype", "float32"}};
  return j.dump(2) + "\n";
}

std::string gpt2_tokenizer_config_json(const std::vector<std::string>& specials,
                                       const std::vector<int32_t>& ids, int64_t context) {
  nlohmann::ordered_json added = nlohmann::ordered_json::object();
  bool end_of_text = false;
  for (size_t i = 0; i < specials.size(); ++i) {
    added[std::to_string(ids.at(i))] = {{"content", specials[i]}, {"lstrip", false},
                                        {"normalized", false},    {"rstrip", false},
                                        {"single_word", false},   {"special", true}};
    end_of_text = end_of_text || specials[i] == "<|endoftext|>";
  }
  // GPT-2's bos/eos/unk token where the vocabulary has it; none (not an added one) otherwise.
  const nlohmann::ordered_json eot =
      end_of_text ? nlohmann::ordered_json("<|endoftext|>") : nlohmann::ordered_json(nullptr);
  nlohmann::ordered_json j = {{"tokenizer_class", "GPT2Tokenizer"},
                              {"add_prefix_space", false},
                              {"model_max_length", context},
                              {"bos_token", eot},
                              {"eos_token", eot},
                              {"unk_token", eot},
                              {"pad_token", nullptr},
                              {"added_tokens_decoder", added},
                              {"additional_special_tokens", specials}};
  return j.dump(2) + "\n";
}

TensorList gpt2_tensors(GptImpl& gpt) {
  check_gpt2_expressible(gpt.config());
  TensorList out;
  for (const auto& t : gpt2_layout(gpt)) {
    auto v = t.param.detach().to(torch::kCPU, torch::kFloat);
    out.emplace_back(kPrefix + t.name, t.conv1d ? v.t().contiguous() : v.contiguous());
  }
  return out;
}

void load_gpt2_weights(GptImpl& gpt, const std::string& dir, bool vocab_from_data) {
  const LmConfig& cfg = gpt.config();
  check_agrees(cfg, dir + "/config.json", vocab_from_data);
  const std::string file = dir + "/model.safetensors";
  std::map<std::string, torch::Tensor> by_name;
  torch::Tensor lm_head;
  // save_pretrained names tensors "transformer.h.0..."; OpenAI's conversions name them "h.0...".
  for (auto& [name, t] : read_safetensors(file)) {
    if (name == "lm_head.weight") {
      lm_head = t;
      continue;
    }
    const std::string key = name.rfind(kPrefix, 0) == 0 ? name.substr(std::strlen(kPrefix)) : name;
    if (is_causal_mask_buffer(key)) continue;
    by_name[key] = t;
  }
  torch::NoGradGuard no_grad;
  for (const auto& t : gpt2_layout(gpt)) {
    auto it = by_name.find(t.name);
    if (it == by_name.end()) throw InputError(stoch::str(file, ": no tensor ", kPrefix, t.name));
    auto src = it->second.to(torch::kFloat);
    std::vector<int64_t> want = t.param.sizes().vec();
    if (t.conv1d) std::swap(want[0], want[1]);
    // A longer position table than model.context: its first rows are the positions stoch uses.
    if (t.name == "wpe.weight" && src.dim() == 2 && src.size(0) >= want[0])
      src = src.slice(0, 0, want[0]);
    auto into = t.param;
    if (t.name == "wte.weight" && src.dim() == 2 && src.size(0) < want[0]) {  // a padded model
      into = t.param.slice(0, 0, src.size(0));
      want[0] = src.size(0);
    }
    if (src.sizes().vec() != want)
      throw InputError(stoch::str(file, ": tensor ", kPrefix, t.name, " has shape ",
                                  it->second.sizes(), ", expected ", torch::IntArrayRef(want)));
    into.copy_(t.conv1d ? src.t() : src);
    by_name.erase(it);
  }
  if (!by_name.empty())
    throw InputError(
        stoch::str(file, ": unexpected tensor ", by_name.begin()->first, " (not part of GPT-2)"));
  // stoch ties the unembedding to wte: a separate lm_head must be that same matrix.
  if (lm_head.defined() &&
      (lm_head.dim() != 2 || lm_head.size(0) > gpt.wte->weight.size(0) ||
       !torch::equal(lm_head.to(torch::kFloat),
                     gpt.wte->weight.detach().cpu().slice(0, 0, lm_head.size(0)))))
    throw InputError(stoch::str(file,
                                ": tensor lm_head.weight differs from transformer.wte.weight; "
                                "stoch ties them (tie_word_embeddings)"));
}

}  // namespace stoch::models
