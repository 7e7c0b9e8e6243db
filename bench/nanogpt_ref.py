#!/usr/bin/env python3
"""Throughput reference: nanoGPT's GPT training step, re-implemented on PyTorch (CPU or CUDA).

Reproduces the model and step of Karpathy's nanoGPT (model.py / train.py) so stoch's
LibTorch GPT can be timed against the same math run through Python:
token + learned position embeddings, pre-LayerNorm blocks (LayerNorm with bias),
causal attention through F.scaled_dot_product_attention(is_causal=True), 4x MLP with
exact GELU, tied input/output embeddings, GPT-2 init, AdamW with weight decay on 2-D
tensors only, gradient clipping at 1.0, cross-entropy over every position.

Deliberate differences from nanoGPT's train.py, none of which changes the work per step:
- constant learning rate (the cosine schedule only changes a scalar);
- on the CPU, no torch.compile and no autocast: stoch runs eager fp32 LibTorch there
  (on CUDA, --bf16 --compile --fused-adam --no-bias give nanoGPT bench.py's own settings);
- data are fresh random tokens, drawn inside the timed step (like nanoGPT's get_batch,
  which is also inside its timed loop); randint of batch x (block+1) tokens costs
  microseconds, on a par with stoch sampling windows from its synthetic source.

Threads: the script calls torch.set_num_threads(--threads) and
torch.set_num_interop_threads(1). The caller should also export OMP_NUM_THREADS and
MKL_NUM_THREADS (to the same count), because OpenMP/MKL read them when the library loads,
before this script runs.

Output: a short header, then exactly one final line
    nanogpt tokens_per_s=<float> ms_per_step=<float> params=<int> peak_gb=<float>
where ms_per_step is the median step time, tokens_per_s = batch * block / median, and
params counts every distinct parameter (the tied embedding once, position embeddings
included; nanoGPT's own printout leaves the position embeddings out), and peak_gb is
torch.cuda.max_memory_allocated() in GB (0 on the CPU).
"""

import argparse
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, dropout, bias):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_head = n_head
        self.dropout = dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        # (B, T, C) -> (B, heads, T, head_dim)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
                   for z in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, n_embd, dropout, bias):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()  # exact erf form, as nanoGPT (not approximate='tanh')
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, dropout, bias):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, dropout=0.0, bias=True):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(Block(n_embd, n_head, dropout, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying, one shared tensor

        self.apply(self._init_weights)
        # GPT-2: scale residual-branch output projections by depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets):
        t = idx.size(1)
        pos = torch.arange(t, dtype=torch.long, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def make_optimizer(model, lr, weight_decay, betas, fused=False):
    # nanoGPT decays matrices and embeddings (dim >= 2), never biases or LayerNorm gains.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--vocab-size", type=int, default=256)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--no-bias", action="store_true", help="no biases (nanoGPT bench.py)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--fused-adam", action="store_true", help="fused AdamW kernel")
    return ap.parse_args()


def main():
    args = parse_args()
    # Inter-op threads must be fixed before any parallel work starts; one pool of
    # intra-op threads is what stoch's C++ side uses as well.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    dev = torch.device(args.device)
    model = GPT(args.vocab_size, args.block_size, args.n_layer, args.n_head,
                args.n_embd, args.dropout, bias=not args.no_bias).to(dev)
    model.train()
    opt = make_optimizer(model, lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95),
                         fused=args.fused_adam)
    n_params = sum(p.numel() for p in model.parameters())
    forward = torch.compile(model) if args.compile else model
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16)
    b, t = args.batch_size, args.block_size

    def step():
        # Random windows of t+1 tokens, split into inputs and next-token targets;
        # contiguous copies, as nanoGPT's get_batch stacks separate x and y tensors.
        data = torch.randint(args.vocab_size, (b, t + 1), device=dev)
        with autocast:
            loss = forward(data[:, :-1].contiguous(), data[:, 1:].contiguous())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # .item() syncs, so the step is really finished when timed

    print(f"nanogpt_ref: torch {torch.__version__}, threads={torch.get_num_threads()} "
          f"interop={torch.get_num_interop_threads()} "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')} "
          f"MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS', '-')}")
    print(f"nanogpt_ref: n_layer={args.n_layer} n_head={args.n_head} n_embd={args.n_embd} "
          f"block={t} batch={b} vocab={args.vocab_size} params={n_params} device={dev} "
          f"bias={not args.no_bias} bf16={args.bf16} compile={args.compile} "
          f"fused_adam={args.fused_adam} "
          f"warmup={args.warmup} steps={args.steps}")

    for _ in range(args.warmup):
        step()
    times, losses = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - start)

    median = statistics.median(times)
    print(f"nanogpt_ref: loss first={losses[0]:.4f} last={losses[-1]:.4f} "
          f"step ms min={1e3 * min(times):.1f} median={1e3 * median:.1f} "
          f"max={1e3 * max(times):.1f}")
    peak_gb = torch.cuda.max_memory_allocated() / 1e9 if dev.type == "cuda" else 0.0
    print(f"nanogpt tokens_per_s={b * t / median:.1f} ms_per_step={1e3 * median:.3f} "
          f"params={n_params} peak_gb={peak_gb:.2f}")


if __name__ == "__main__":
    main()
