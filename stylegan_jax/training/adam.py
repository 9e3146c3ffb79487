"""Adam with torch.optim.Adam's per-parameter semantics, as the official training runs it.

Two things differ from an optax Adam fed a whole gradient tree:
- every parameter has its own step count, and a parameter that the phase's gradient did not reach
  is skipped: its moments and step count stay put (torch skips parameters whose `.grad` is None;
  see connectivity.py for how the reached ones are found);
- frozen parameters (e.g. the first discriminator layers in transfer learning) are not in the
  optimiser state at all and never move.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp

from stylegan_jax.training.losses import lerp

Path = tuple[str, ...]


class AdamState(flax.struct.PyTreeNode):
    """First and second moments and per-parameter step counts, over the trainable parameters only."""

    exp_avg: Any
    exp_avg_sq: Any
    step: Any


def select(tree: dict, keep: Callable[[Path], bool], prefix: Path = ()) -> dict:
    """The nested dict `tree` without the leaves whose path `keep` rejects (and emptied branches)."""
    out = {}
    for key, value in tree.items():
        path = (*prefix, key)
        if isinstance(value, dict) or hasattr(value, "items"):
            sub = select(dict(value), keep, path)
            if sub:
                out[key] = sub
        elif keep(path):
            out[key] = value
    return out


def merge(tree: dict, updates: dict) -> dict:
    """`tree` with the leaves present in the (possibly pruned) `updates` replaced."""
    out = dict(tree)
    for key, value in updates.items():
        out[key] = merge(dict(tree[key]), value) if isinstance(value, dict) else value
    return out


@dataclasses.dataclass(frozen=True)
class Adam:
    """torch.optim.Adam (no weight decay, no amsgrad) over the parameters `trainable` accepts."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    trainable: Callable[[Path], bool] | None = None  # None: every parameter

    def _trainable(self, tree: dict) -> dict:
        return dict(tree) if self.trainable is None else select(tree, self.trainable)

    def init(self, params: dict) -> AdamState:
        """Zero moments and step counts for the trainable parameters."""
        params = self._trainable(params)
        zeros = lambda tree: jax.tree_util.tree_map(jnp.zeros_like, tree)
        steps = jax.tree_util.tree_map(lambda _: jnp.zeros((), jnp.int32), params)
        return AdamState(exp_avg=zeros(params), exp_avg_sq=zeros(params), step=steps)

    def update(self, params: dict, grads: dict, state: AdamState, reached: Any = None, lr: Any = None,
               beta2: Any = None) -> tuple[dict, AdamState]:
        """One Adam step of every trainable parameter the gradient reached (`reached`: a tree of
        static bools like `params`, default all); the others keep their values, moments and steps.
        `lr` and `beta2`, if given (e.g. scheduled values), replace this step's settings, as setting
        torch's param_groups before `step()` does."""
        lr = self.lr if lr is None else lr
        beta2 = self.beta2 if beta2 is None else beta2
        trainable, grads = self._trainable(params), self._trainable(grads)
        reached = jax.tree_util.tree_map(lambda _: True, trainable) if reached is None else self._trainable(reached)

        def step_one(p, g, m, v, t, hit):
            if not hit:
                return p, m, v, t
            t_new = t + 1
            m_new = lerp(m, g, 1 - self.beta1)
            v_new = beta2 * v + (1 - beta2) * jnp.square(g)
            tf = t_new.astype(jnp.float32)
            correction1 = 1 - jnp.power(jnp.float32(self.beta1), tf)
            correction2 = 1 - jnp.power(jnp.asarray(beta2, jnp.float32), tf)
            denom = jnp.sqrt(v_new) / jnp.sqrt(correction2) + self.eps
            return p - (lr / correction1) * m_new / denom, m_new, v_new, t_new

        out = jax.tree_util.tree_map(step_one, trainable, grads, state.exp_avg, state.exp_avg_sq, state.step, reached)
        is_result = lambda x: isinstance(x, tuple)
        pick = lambda i: jax.tree_util.tree_map(lambda r: r[i], out, is_leaf=is_result)
        new_state = AdamState(exp_avg=pick(1), exp_avg_sq=pick(2), step=pick(3))
        return merge(dict(params), pick(0)), new_state


def lazy_adam(lr: float, beta1: float, beta2: float, eps: float, reg_interval: int,
              trainable: Callable[[Path], bool] | None = None) -> Adam:
    """Adam with the lazy-regularisation correction: lr and betas scaled by interval / (interval + 1).

    `reg_interval` 0 means no lazy regularisation (one combined phase): plain lr and betas.
    """
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    return Adam(lr * ratio, beta1 ** ratio, beta2 ** ratio, eps, trainable)
