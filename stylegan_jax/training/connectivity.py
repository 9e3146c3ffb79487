"""Which parameters a loss's gradient reaches at all, decided from the traced program.

torch's Adam skips a parameter whose `.grad` is None: one the backward graph never reached, as
opposed to one it reached with zeros. JAX returns zeros in both cases, but an unreached
parameter's gradient is a constant in the traced program, while a reached one is computed from
the inputs. A dependency pass over the jaxpr of the gradient tells the two apart, once per phase
at trace time, so the training step itself pays nothing.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
from jax.extend import core as jex_core


def _sub_jaxpr(eqn) -> Any:
    """The inner jaxpr of a call-like equation whose inputs and outputs map one to one, else None."""
    for value in eqn.params.values():
        inner = getattr(value, "jaxpr", value)
        if isinstance(inner, jex_core.Jaxpr) and len(inner.invars) == len(eqn.invars) \
                and len(inner.outvars) == len(eqn.outvars):
            return inner
    return None


def _dependent_outputs(jaxpr, dependent_inputs: list[bool]) -> list[bool]:
    """For each output of `jaxpr`, whether it is computed from a dependent input."""
    dependent = {var for var, flag in zip(jaxpr.invars, dependent_inputs) if flag}
    is_dependent = lambda var: isinstance(var, jex_core.Var) and var in dependent
    for eqn in jaxpr.eqns:
        flags = [is_dependent(var) for var in eqn.invars]
        if not any(flags):
            continue
        inner = _sub_jaxpr(eqn)
        outs = _dependent_outputs(inner, flags) if inner is not None else [True] * len(eqn.outvars)
        dependent.update(var for var, flag in zip(eqn.outvars, outs) if flag)
    return [is_dependent(var) for var in jaxpr.outvars]


def reached_parameters(loss_fn: Callable[..., tuple[jax.Array, Any]], params: Any, *args: Any) -> Any:
    """A tree of bools like `params`: whether the gradient of loss_fn(params, *args)[0] reaches each leaf.

    `params` and `args` may be abstract (jax.ShapeDtypeStruct).
    """
    grad_fn = jax.grad(loss_fn, has_aux=True)
    closed = jax.make_jaxpr(grad_fn)(params, *args)
    flags = _dependent_outputs(closed.jaxpr, [True] * len(closed.jaxpr.invars))
    leaves, treedef = jax.tree_util.tree_flatten(params)
    return jax.tree_util.tree_unflatten(treedef, flags[:len(leaves)])
