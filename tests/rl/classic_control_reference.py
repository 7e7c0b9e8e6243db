"""Reference episodes from Gymnasium's classic-control environments for test_classic_control.cpp.

usage: classic_control_reference.py CASE...
  CASE = episodes:ENV:MAX_STEPS:POLICY:COUNT:SEED  COUNT episodes of gymnasium.make(ENV), reset
         with seeds SEED, SEED+1, ...; MAX_STEPS 0 keeps the registered time limit.
         POLICY: random (uniform actions) or heuristic (a controller that tends to reach the
         goal, or for CartPole to balance, with 10% random actions).
  CASE = resets:ENV:COUNT:SEED  COUNT start states from one generator seeded with SEED.

Output, one record a line, numbers as Python repr (float64 round-trips exactly):
  episode CASE_INDEX K
  init STATE...                 env.unwrapped.state after reset
  obs OBS...                    the reset observation (float32 values)
  step ACTION REWARD TERMINATED TRUNCATED ; OBS... ; STATE...
  end
  reset STATE...
Exit status 3 when gymnasium cannot be imported (the test skips).
"""

import sys

import numpy as np

try:
    import gymnasium as gym
except ImportError as e:
    print(f"gymnasium is not importable: {e}", file=sys.stderr)
    sys.exit(3)


def num(x):
    return repr(float(x))


def state_of(env):
    return [float(v) for v in np.asarray(env.unwrapped.state, dtype=np.float64)]


def heuristic(name, obs):
    if name == "CartPole-v1":
        x, x_dot, theta, theta_dot = obs
        return int(theta + 0.3 * theta_dot + 0.01 * x + 0.05 * x_dot > 0)
    if name == "Acrobot-v1":
        return 2 if obs[5] > 0 else 0  # torque along the elbow's swing pumps energy in
    if name == "MountainCar-v0":
        return 2 if obs[1] >= 0 else 0  # push along the velocity
    raise ValueError(name)


def make(name, max_steps):
    kwargs = {"disable_env_checker": True}
    if max_steps > 0:
        kwargs["max_episode_steps"] = max_steps
    return gym.make(name, **kwargs)


def episodes(index, name, max_steps, policy, count, seed, out):
    env = make(name, max_steps)
    n = env.action_space.n
    rng = np.random.default_rng(seed)
    for k in range(count):
        obs, _ = env.reset(seed=seed + k)
        out.append(f"episode {index} {k}")
        out.append("init " + " ".join(num(v) for v in state_of(env)))
        out.append("obs " + " ".join(num(v) for v in obs))
        while True:
            if policy == "random" or rng.random() < 0.1:
                action = int(rng.integers(n))
            else:
                action = heuristic(name, obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            fields = [str(action), num(reward), str(int(terminated)), str(int(truncated))]
            fields += [";"] + [num(v) for v in obs] + [";"] + [num(v) for v in state_of(env)]
            out.append("step " + " ".join(fields))
            if terminated or truncated:
                break
        out.append("end")
    env.close()


def resets(name, count, seed, out):
    env = make(name, 0)
    env.reset(seed=seed)
    for _ in range(count):
        env.reset()
        out.append("reset " + " ".join(num(v) for v in state_of(env)))
    env.close()


def main(argv):
    out = []
    for index, case in enumerate(argv):
        kind, name, *rest = case.split(":")
        if kind == "episodes":
            max_steps, policy, count, seed = rest
            episodes(index, name, int(max_steps), policy, int(count), int(seed), out)
        elif kind == "resets":
            count, seed = rest
            resets(name, int(count), int(seed), out)
        else:
            raise ValueError(f"unknown case {case!r}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
