"""Reference data for tests/rl/test_minatar.cpp, produced with the installed minatar package.

  minatar_reference.py rng    numpy RandomState draws, one call a line with its arguments
  minatar_reference.py traj   whole MinAtar episodes: actions, rewards, terminal flags, frames

Floats are printed with float.hex() so that C++ reads them back exactly. Frames are the
channels-first bits of state(), packed with np.packbits and printed as hex.
"""
import copy
import sys

import numpy as np
from minatar import Environment

GAMES = ["asterix", "breakout", "freeway", "seaquest", "space_invaders"]
NOOP, LEFT, UP, RIGHT, DOWN, FIRE = range(6)
# Games whose scripted play avoids death by looking this many steps ahead (on copies).
LOOKAHEAD = {"asterix": 2, "breakout": 1, "seaquest": 2, "space_invaders": 1}


def rng_lines():
    bounds = [1, 2, 3, 5, 7, 8, 9, 10, 16, 17, 100, 255, 256, 257, 1000, 2**31 - 1, 2**31,
              2**32 - 1, 2**32, 2**32 + 1, 2**40 + 3, 2**62, 2**63 - 1]
    seeds = [0, 1, 2, 7, 42, 1234, 99991, 2**31 - 1, 2**31, 2**32 - 1, 3141592653]
    out = []
    for seed in seeds:
        rs = np.random.RandomState(seed)
        args = np.random.RandomState(seed ^ 0x5EED)  # arguments, kept off the tested stream
        out.append(f"seed {seed}")
        for j in range(400):
            op = j % 7
            n = bounds[(j // 7) % len(bounds)]
            if op == 0:
                out.append(f"rand {rs.rand().hex()}")
            elif op == 1:
                out.append(f"randint 0 {n} {rs.randint(n)}")
            elif op == 2:
                low = -int(args.randint(1000)) if j % 2 else 3
                high = low + n if low + n < 2**63 else 2**63 - 1
                out.append(f"randint {low} {high} {rs.randint(low, high)}")
            elif op == 3:
                vals = rs.randint(0, n, size=5)
                out.append(f"randints 0 {n} " + " ".join(str(v) for v in vals))
            elif op == 4:
                m = min(n, 1000)
                out.append(f"choice {m} {rs.choice(m)}")
            elif op == 5:
                p = args.rand(1 + j % 6)
                p = p / p.sum()
                out.append("choicep " + ",".join(v.hex() for v in p) + f" {rs.choice(len(p), p=p)}")
            else:
                out.append("rands " + " ".join(v.hex() for v in rs.rand(4)))
    return out


def frame_hex(env):
    return np.packbits(np.transpose(env.state(), (2, 0, 1)).ravel()).tobytes().hex()


_SCRATCH = np.random.RandomState(0)


def clone(game):
    """A copy of a game for the scripted player's lookahead. It draws its spawns from a scratch
    stream (copying the real one costs more than the step), so the lookahead may be wrong about
    new arrivals; the real game's stream is never touched."""
    g = copy.copy(game)
    for key, value in game.__dict__.items():
        if isinstance(value, list):
            setattr(g, key, [list(v) if isinstance(v, list) else v for v in value])
        elif isinstance(value, np.ndarray):
            setattr(g, key, value.copy())
    g.random = _SCRATCH
    return g


def shot_hits(game, moves):
    """Space Invaders: after these moves, does a shot fired next kill an alien?"""
    g = clone(game)
    for a in moves:
        if g.act(a)[1]:
            return False
    reward, terminal = g.act(FIRE)
    while not terminal and reward == 0 and g.f_bullet_map.any():
        reward, terminal = g.act(NOOP)
    return reward > 0 and not terminal


def survives(game, action, candidates, depth):
    """Looks depth steps ahead on copies: can the agent take this action and stay alive?"""
    g = clone(game)
    _, terminal = g.act(action)
    if terminal:
        return False
    if depth <= 1:
        return True
    return any(survives(g, b, candidates, depth - 1) for b in candidates)


def safe_action(game, rnd, preferred, candidates, depth=1):
    if survives(game, preferred, candidates, depth):
        return preferred
    order = list(candidates)
    rnd.shuffle(order)
    for a in order:
        if survives(game, a, candidates, depth):
            return a
    return preferred


def heuristic(name, game, rnd, style):
    """A full-set action that plays well enough for ramping and rare events to happen."""
    if name == "breakout":
        # Aim at the column where the ball will be one row above the paddle, moving down.
        g = clone(game)
        for _ in range(30):
            if g.ball_y == 8 and g.ball_dir in (2, 3):
                break
            g.act(NOOP)
        x = g.ball_x
        return LEFT if x < game.pos else RIGHT if x > game.pos else NOOP
    if name == "freeway":
        return UP if rnd.rand() < 0.7 else int(rnd.randint(6))
    if name == "asterix":
        golds = [e for e in game.entities if e is not None and e[3]]
        pref = int(rnd.randint(5))
        if golds:
            g = golds[0]
            pref = (UP if g[1] < game.player_y else DOWN if g[1] > game.player_y else
                    LEFT if g[0] < game.player_x else RIGHT)
        return pref
    if name == "space_invaders":
        cols = [x for x in range(10) if game.alien_map[:, x].any()]
        if style == "passive" and cols:
            # Clears one column of the formation and shelters in the gap until the aliens
            # reach the bottom row and wrap around to the top (the np.roll in their descent).
            gaps = [x for x in range(cols[0], cols[-1] + 1) if x not in cols]
            target = gaps[0] if gaps else (cols[0] + cols[-1]) // 2
            if target == game.pos:
                return FIRE if not gaps and game.shot_timer == 0 else NOOP
            return LEFT if target < game.pos else RIGHT
        target = min(cols, key=lambda x: abs(x - game.pos)) if cols else game.pos
        pref = LEFT if target < game.pos else RIGHT if target > game.pos else NOOP
        if np.count_nonzero(game.alien_map) > 6:
            if game.shot_timer == 0 and target == game.pos:
                pref = FIRE
        elif game.shot_timer == 0 and shot_hits(game, []):
            pref = FIRE
        elif game.shot_timer <= 1:
            # The last few aliens move fast: look for the move after which a shot hits.
            for move in (pref, NOOP, LEFT, RIGHT):
                if shot_hits(game, [move]):
                    pref = move
                    break
        return pref
    if name == "seaquest":
        # Rescues divers and comes up for air, except in the passive style (runs out of oxygen).
        need_air = game.oxygen < 60 or game.diver_count == 6
        if style != "passive" and game.diver_count > 0 and need_air:
            pref = UP
        elif style == "hunt" and game.e_subs:
            # Faces the nearest enemy sub in its row and fires, so that subs run into bullets.
            sub = min(game.e_subs, key=lambda e: abs(e[1] - game.sub_y) + abs(e[0] - game.sub_x))
            facing = (sub[0] > game.sub_x) == bool(game.sub_or)
            if sub[1] != game.sub_y:
                pref = UP if sub[1] < game.sub_y else DOWN
            elif not facing:
                pref = RIGHT if sub[0] > game.sub_x else LEFT
            else:
                pref = FIRE if game.shot_timer == 0 else NOOP
        elif game.sub_y < 4:
            pref = DOWN
        elif game.divers:
            d = game.divers[0]
            pref = (UP if d[1] < game.sub_y and game.sub_y > 1 else DOWN if d[1] > game.sub_y
                    else LEFT if d[0] < game.sub_x else RIGHT)
        else:
            pref = FIRE if rnd.rand() < 0.5 else int(rnd.randint(6))
        if game.sub_y == 1 and pref == UP and game.diver_count == 0:
            pref = NOOP
        return pref
    return int(rnd.randint(6))


def run_lines(name, minimal, sticky, ramping, seed, episodes, cap, eps, style):
    env = Environment(name, sticky_action_prob=sticky, difficulty_ramping=ramping)
    env.seed(seed)
    actions = env.minimal_action_set() if minimal else list(range(6))
    rnd = np.random.RandomState((seed + 7919) % 2**32)  # the policy's own stream
    out = [f"run {name} {int(minimal)} {sticky.hex()} {int(ramping)} {seed} {episodes}"]
    for _ in range(episodes):
        env.reset()
        out.append(f"reset {frame_hex(env)}")
        for _ in range(cap):
            if rnd.rand() < eps:
                want = actions[int(rnd.randint(len(actions)))]
            else:
                want = heuristic(name, env.env, rnd, style)
            if eps < 1 and name in LOOKAHEAD:
                want = safe_action(env.env, rnd, want, actions, LOOKAHEAD[name])
            index = actions.index(want) if want in actions else int(rnd.randint(len(actions)))
            reward, terminal = env.act(actions[index])
            out.append(f"step {index} {int(reward)} {int(terminal)} {frame_hex(env)}")
            if terminal:
                break
    return out


def traj_lines():
    out = []
    configs = [  # minimal, sticky, ramping
        (False, 0.1, True),
        (True, 0.1, True),
        (False, 0.0, False),
        (True, 0.0, False),
    ]
    for name in GAMES:
        actions = Environment(name).minimal_action_set()
        out.append(f"actions {name} " + " ".join(str(a) for a in actions))
        for c, (minimal, sticky, ramping) in enumerate(configs):
            if name == "freeway":
                runs = [(c * 1000 + 5, 2, 2600, 0.3, "")]  # 2501 steps an episode
            else:
                cap = 700 if name in ("breakout", "space_invaders") else 1200
                runs = [(seed, 2, cap, eps, style)
                        for seed, eps, style in [(c * 1000 + 1, 1.0, "active"),
                                                 (c * 1000 + 2, 0.1, "active"),
                                                 (c * 1000 + 3, 0.05, "passive"),
                                                 (c * 1000 + 4, 0.02, "active"),
                                                 (2**32 - 1 - c, 0.1, "active")]]
            if name == "seaquest":
                runs += [(c * 1000 + s, 2, 1200, 0.02, "hunt") for s in (6, 7, 8)]
            for seed, episodes, cap, eps, style in runs:
                out += run_lines(name, minimal, sticky, ramping, seed, episodes, cap, eps, style)
    return out


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "traj"
    lines = rng_lines() if mode == "rng" else traj_lines()
    sys.stdout.write("\n".join(lines) + "\n")
