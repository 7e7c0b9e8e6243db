"""Every DQN update of a stoch run recomputed in float64 from its per-step checkpoints.

usage: dqn_update_reference.py RUN_DIR CONFIG_JSON
  RUN_DIR      a `stoch train` run of task dqn, torso mlp (relu), with train.ckpt_every=1,
               train.keep_last=0, log.every=1, optim.beta1=0 and train.grad_clip=0
  CONFIG_JSON  the settings it was given, {"value.loss": "c51", "dqn.n_step": "3", ...} (a file
               or the text; numbers or --set strings); missing keys take stoch's DEFAULTS

Update k is rebuilt from checkpoint k-1's online network and checkpoint k's target network and
replay buffer (collection precedes the update: the buffer it sampled). Checked, with tolerances:
  loss      = metrics.jsonl's loss of step k        |diff| <= 1e-5 max(1, |loss|)
  gradient  = checkpoint k's AdamW exp_avg          max |diff| <= 1e-4 max(0.1, max |gradient|)
  target    = checkpoint k-1's online network (tau < 1: lerped toward it) when step k's
              collection crossed a multiple of dqn.target_update_every, else unchanged
  PER       the drawn transitions' new priorities (|td| + eps)^alpha: |td diff| <= 1e-5 max(1, |y|);
            beta, annealed linearly from dqn.priority_beta to 1 over the run
stoch computes in float32 (6e-8 a rounding): its sums over a 120-84 MLP and 21 bins leave ~1e-6
(seen: <= 1e-6 on the loss, <= 5e-6 on the gradient, <= 5e-7 on td). The 0.1 floor: an update
that nearly fits its target has a gradient of differences of nearly equal float32 probabilities,
whose rounding does not shrink with it. A wrong definition moves the loss by 1e-3 or more.
Returns and discounts are rounded to float32 as the learner is given them. value_transform
other than none is not covered (exit 2).

The setting trick: with uniform replay, dqn.replay_capacity = dqn.n_step (one env) leaves one
sampleable transition (the oldest row's window): every batch row is that one and the batch mean
is its loss. With optim.beta1 = 0, exp_avg = (1 - beta1) g is the update's gradient. Prioritised
replay (any capacity): the drawn leaves are those whose priority changed between the tree sampled
from (checkpoint k-1's, plus step k's rows) and checkpoint k's; updates that drew one twice are
skipped (which one is unknown).

Definitions: y = sum_{i<k} gamma^i r_i + gamma^k Q'(s_k, a*), the n-step window cut at the first
terminated or truncated step, no bootstrap after termination (Mnih et al. 2015; Hessel et al.
2018); a* = argmax Q'(s_k, .), or of the online Q with dqn.double_dqn (van Hasselt, Guez and
Silver 2016); a categorical head's Q is its softmax's mean over the support. Losses: mse, huber,
mse_on_expectation; c51, cross-entropy against r + gamma^k z projected onto the atoms
linspace(v_min, v_max, m) (Bellemare, Dabney and Munos 2017, Algorithm 1); two_hot, hl_gauss
(sigma_ratio bin widths, integrated over each bin, renormalised) and one_hot on the bin centres
(Farebrother et al. 2024). Prioritised replay (Schaul et al. 2016): td = |Q(s, a) - y| (c51: its
loss), weights (p_i / p_min)^-beta, loss = mean of weight * per-sample loss.
Prints one line; exit 0 when all agree, 1 at the first disagreement (its step), 2 on bad input.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
from safetensors.numpy import load_file

torch.set_default_dtype(torch.float64)
DEFAULTS = {"dqn.gamma": 0.99, "dqn.n_step": 1, "dqn.double_dqn": False, "dqn.tau": 1.0,
            "dqn.target_update_every": 500, "dqn.train_every": 10, "dqn.learning_starts": 10000,
            "dqn.total_env_steps": 0, "dqn.prioritized": False, "dqn.priority_alpha": 0.6,
            "dqn.priority_beta": 0.4, "value.loss": "hl_gauss", "value.num_bins": 101,
            "value.v_min": -10.0, "value.v_max": 10.0, "value.sigma_ratio": 0.75,
            "value.huber_delta": 1.0, "value.value_transform": "none", "train.batch_size": 16,
            "train.grad_accum": 1, "train.grad_clip": 1.0, "optim.beta1": 0.9}


class Mismatch(Exception):
    pass


def setting(cfg, key):
    v = cfg.get(key, DEFAULTS.get(key))
    if not isinstance(v, str) or key in ("value.loss", "value.value_transform"):
        return v
    return {"true": True, "false": False}[v.lower()] if v.lower() in ("true", "false") else float(v)


def params(path):
    return {k[6:]: torch.tensor(v, dtype=torch.float64)
            for k, v in load_file(path).items() if k.startswith("param.")}


def forward(p, x):  # torso mlp (relu), then the head: [A * K]
    i = 0
    while f"torso.layers.{i}.weight" in p:
        x = torch.relu(x @ p[f"torso.layers.{i}.weight"].T + p[f"torso.layers.{i}.bias"])
        i += 1
    return x @ p["head.weight"].T + p["head.bias"]


def parse_replay(b):  # ReplayBuffer::save_state (src/rl/replay_buffer.cpp), little-endian
    b, at = bytes(b), [0]

    def take(fmt=None, dtype=None, count=0):
        if fmt:
            v = struct.unpack_from("<" + fmt, b, at[0])
            at[0] += struct.calcsize("<" + fmt)
            return v[0] if len(v) == 1 else v
        a = np.frombuffer(b, dtype, count, at[0]).copy()
        at[0] += a.nbytes
        return a

    if take("8s") != b"STOCHRB\0" or take("I") != 1:
        raise ValueError("not a version 1 replay buffer state")
    r = dict(zip(["capacity", "d", "binary", "E", "n", "gamma", "prioritized", "alpha", "eps",
                  "beta", "rows_added", "max_priority"], take("qqBiidBdddqd")))
    d, E = r["d"], r["E"]
    r["rows"] = r["capacity"] // E  # capacity is rows * num_envs
    slots = min(r["rows_added"], r["rows"]) * E  # ring positions [0, rows_filled) hold data
    for key in ("obs", "next"):
        if r["binary"]:  # bit j of byte i is entry 8 i + j
            bits = take(dtype=np.uint8, count=slots * ((d + 7) // 8)).reshape(slots, -1)
            r[key] = np.unpackbits(bits, axis=1, bitorder="little")[:, :d].astype(np.float64)
        else:
            r[key] = take(dtype=np.float32, count=slots * d).reshape(slots, d).astype(np.float64)
    r["actions"] = take(dtype=np.int32, count=slots)
    r["rewards"] = take(dtype=np.float32, count=slots)
    r["flags"] = take(dtype=np.uint8, count=slots)  # 1 terminated, 2 truncated
    r["leaves"] = np.zeros(r["rows"] * E)
    if r["prioritized"]:
        r["leaves"][:slots] = take(dtype=np.float64, count=slots)
    if at[0] != len(b):
        raise ValueError(f"replay buffer state: {len(b) - at[0]} bytes left over")
    return r


def window(r, row, env, gamma):  # row's n-step transition: s, a, return, s_k, gamma^k (or 0)
    ret, g = 0.0, 1.0
    for k in range(r["n"]):
        last = ((row + k) % r["rows"]) * r["E"] + env
        ret, g = ret + g * float(r["rewards"][last]), g * gamma
        if r["flags"][last]:
            break  # the episode ends here
    first = (row % r["rows"]) * r["E"] + env
    f32 = lambda x: float(np.float32(x))  # the learner is given float32 returns and discounts
    return (torch.tensor(r["obs"][first]), int(r["actions"][first]), f32(ret),
            torch.tensor(r["next"][last]), 0.0 if r["flags"][last] & 1 else f32(g))


def sampled_leaves(r0, r1, n, alpha):
    """The tree the update sampled from (r0's, each row added since at 0 and the row its window
    completes at max_priority^alpha) and the leaves the update changed: the ones it drew."""
    pre, rows, E = r0["leaves"].copy(), r1["rows"], r1["E"]
    for row in range(r0["rows_added"], r1["rows_added"]):
        for e in range(E):
            pre[(row % rows) * E + e] = 0.0
            if row + 1 >= n:
                pre[((row + 1 - n) % rows) * E + e] = r0["max_priority"] ** alpha
    return pre, np.nonzero(pre != r1["leaves"])[0]


class Loss:
    def __init__(self, cfg):
        self.kind, self.m = setting(cfg, "value.loss"), int(setting(cfg, "value.num_bins"))
        self.scalar, self.delta = self.kind in ("mse", "huber"), setting(cfg, "value.huber_delta")
        if str(setting(cfg, "value.value_transform")).lower() not in ("none", "false"):
            raise ValueError("value.value_transform: not covered by this check")
        lo, hi = setting(cfg, "value.v_min"), setting(cfg, "value.v_max")
        self.edges = torch.linspace(lo, hi, self.m + 1)
        self.sigma = setting(cfg, "value.sigma_ratio") * (hi - lo) / self.m
        centres = (self.edges[:-1] + self.edges[1:]) / 2
        self.support = torch.linspace(lo, hi, self.m) if self.kind == "c51" else centres

    def value(self, head):  # head [..., K] -> value [...]
        return head[..., 0] if self.scalar else torch.softmax(head, -1) @ self.support

    def values(self, head):
        return self.value(head.detach()).tolist()

    def project(self, xs, ps):  # mass p at x split linearly between its atoms (x clamped)
        z, out = self.support.tolist(), torch.zeros(self.m)
        for x, p in zip(xs, ps):
            b = (min(max(x, z[0]), z[-1]) - z[0]) / ((z[-1] - z[0]) / (self.m - 1))
            lo = min(int(math.floor(b)), self.m - 2)  # l == u: all on one atom
            out[lo] += p * (1 - (b - lo))
            out[lo + 1] += p * (b - lo)
        return out

    def distribution(self, y):  # the target distribution of a scalar target
        if self.kind == "two_hot":
            return self.project([y], [1.0])
        if self.kind == "one_hot":
            return torch.eye(self.m)[int(np.searchsorted(self.edges[1:-1].numpy(), y, "right"))]
        y = min(max(y, self.edges[0].item()), self.edges[-1].item())  # hl_gauss
        cdf = torch.special.erf((self.edges - y) / (math.sqrt(2) * self.sigma))
        return (cdf[1:] - cdf[:-1]) / (cdf[-1] - cdf[0])

    def sample_loss(self, chosen, y, ret, disc, next_probs):  # -> (loss, td)
        if self.kind == "c51":
            p = self.project((ret + disc * self.support).tolist(), next_probs.tolist())
            ce = -(p * torch.log_softmax(chosen, -1)).sum()
            return ce, ce.item()
        v = self.value(chosen)
        if self.kind in ("mse", "mse_on_expectation"):
            loss = (v - y) ** 2
        elif self.kind == "huber":
            e, d = v - y, self.delta
            loss = 0.5 * e**2 if abs(e.item()) < d else d * (abs(e) - d / 2)
        else:
            loss = -(self.distribution(y) * torch.log_softmax(chosen, -1)).sum()
        return loss, abs(v.item() - y)


def check(run, cfg):
    L, get = Loss(cfg), lambda key: setting(cfg, key)
    gamma, n, B = get("dqn.gamma"), int(get("dqn.n_step")), int(get("train.batch_size"))
    per, double, alpha = get("dqn.prioritized"), get("dqn.double_dqn"), get("dqn.priority_alpha")
    tau, T = get("dqn.tau"), get("dqn.target_update_every")
    if (get("optim.beta1"), get("train.grad_clip"), get("train.grad_accum")) != (0, 0, 1):
        raise ValueError("needs optim.beta1 0, train.grad_clip 0 and train.grad_accum 1")
    with open(os.path.join(run, "metrics.jsonl")) as f:
        logged = {j["step"]: j["loss"] for j in map(json.loads, f) if j.get("split") == "train"}
    at = lambda k, name: os.path.join(run, "checkpoints", f"step-{k:08d}", name + ".safetensors")
    names = os.listdir(os.path.join(run, "checkpoints"))
    steps = {int(s[5:]) for s in names if s[:5] == "step-" and s[5:].isdigit()}
    worst, checked, skipped, syncs, picks, changed = dict(loss=0, grad=0, td=0), 0, 0, 0, 0, 0
    for k in sorted(k for k in steps if k - 1 in steps):
        agent0, agent1 = load_file(at(k - 1, "agent")), load_file(at(k, "agent"))
        r0, r1 = parse_replay(agent0["replay"]), parse_replay(agent1["replay"])
        built = (r1["n"], r1["gamma"], bool(r1["prioritized"]), per and r1["alpha"])
        if built != (n, gamma, per, per and alpha):
            raise Mismatch(f"step {k}: replay built with n_step {r1['n']}, gamma {r1['gamma']}, "
                           f"prioritized {r1['prioritized']}, alpha {r1['alpha']}")
        online, target0, target = (params(at(k - 1, "model")), params(at(k - 1, "target")),
                                   params(at(k, "target")))
        synced = agent1["counters"][0] // T > agent0["counters"][0] // T  # over env steps
        syncs += synced
        for q in target:
            want = target0[q] + tau * (online[q] - target0[q]) if synced else target0[q]
            if not torch.allclose(target[q], want, rtol=1e-6, atol=1e-7):
                raise Mismatch(f"step {k}: target network {q} is not the "
                               + ("online one" if synced else "previous one"))
        E, rows, oldest = r1["E"], r1["rows"], r1["rows_added"] - min(r1["rows_added"], r1["rows"])
        if per:
            pre, drawn = sampled_leaves(r0, r1, n, alpha)
            if len(drawn) > B:
                raise Mismatch(f"step {k}: {len(drawn)} priorities changed by a batch of {B}")
            if len(drawn) < B:
                skipped += 1
                continue
            total = get("dqn.total_env_steps") or (
                get("dqn.learning_starts") + get("train.steps") * get("dqn.train_every"))
            beta0 = get("dqn.priority_beta")
            beta = beta0 + (1 - beta0) * min(1.0, agent1["counters"][0] / total)
            if abs(r1["beta"] - beta) > 1e-12:
                raise Mismatch(f"step {k}: replay beta {r1['beta']}, expected {beta}")
            batch = [(s, oldest + (s // E - oldest % rows) % rows, s % E,
                      (pre[s] / pre[pre > 0].min()) ** -beta) for s in drawn]
        else:
            if (min(r1["rows_added"], rows) - n + 1) * E != 1:
                raise ValueError("uniform replay needs dqn.replay_capacity = dqn.n_step, one env")
            batch = [(None, oldest, 0, 1.0)]
        for p in online.values():
            p.requires_grad_(True)
        loss = 0.0
        for slot, row, env, weight in batch:
            s, a, ret, s2, disc = window(r1, row, env, gamma)
            with torch.no_grad():
                heads = forward(target, s2).view(-1, 1 if L.scalar else L.m)
                q_next = L.values(heads)
                best = int(np.argmax(q_next))
                if double:
                    online_best = int(np.argmax(L.values(forward(online, s2).view(heads.shape))))
                    picks, changed, best = picks + 1, changed + (online_best != best), online_best
                y = ret + disc * q_next[best]
            sample, td = L.sample_loss(forward(online, s).view(heads.shape)[a], y, ret, disc,
                                       torch.softmax(heads[best], -1))
            loss = loss + weight * sample / len(batch)
            if per:
                err = abs(r1["leaves"][slot] ** (1 / alpha) - r1["eps"] - td) / max(1.0, abs(y))
                worst["td"] = max(worst["td"], err)
                if err > 1e-5:
                    raise Mismatch(f"step {k}: transition {row * E + env}'s priority is "
                                   f"{r1['leaves'][slot]:.7g}, for td {td:.7g} expected "
                                   f"{(td + r1['eps']) ** alpha:.7g}")
        loss.backward()
        err = abs(loss.item() - logged[k]) / max(1.0, abs(loss.item()))
        worst["loss"] = max(worst["loss"], err)
        if err > 1e-5:
            raise Mismatch(f"step {k}: loss {logged[k]:.7g} logged, {loss.item():.7g} expected")
        opt = load_file(at(k, "optimizer"))
        scale = max([0.1] + [p.grad.abs().max().item() for p in online.values()])
        err = max((torch.tensor(opt[q + ".exp_avg"]) - p.grad).abs().max().item()
                  for q, p in online.items()) / scale
        worst["grad"] = max(worst["grad"], err)
        if err > 1e-4:
            raise Mismatch(f"step {k}: gradient (exp_avg) off by {err:.2e} of max(0.1, largest)")
        checked += 1
    if checked == 0 or checked < skipped:
        raise Mismatch(f"only {checked} updates could be checked ({skipped} drew a leaf twice)")
    return (f"{L.kind} n_step {n}{' double' if double else ''}{' prioritized' if per else ''}: "
            f"{checked} updates agree ({skipped} skipped, {syncs} target syncs"
            + (f", double DQN changed {changed} of {picks} bootstrap actions" if double else "")
            + f"); worst loss {worst['loss']:.1e}, gradient {worst['grad']:.1e}"
            + (f", td {worst['td']:.1e}" if per else ""))


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        text = open(argv[2]).read() if os.path.isfile(argv[2]) else argv[2]
        print(check(argv[1], json.loads(text)))
        return 0
    except Mismatch as e:
        print(f"MISMATCH {e}")
        return 1
    except Exception as e:  # not a run these settings describe (Python's own exit 1 is taken)
        print(f"unusable input: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
