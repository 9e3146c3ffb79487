"""Which parameters a loss's gradient reaches at all, decided from the traced program.

torch's Adam skips a parameter whose `.grad` is None: one the backward graph never reached, as
opposed to one it reached with zeros. JAX returns zeros in both cases, but an unreached
parameter's gradient is a constant in the traced program, while a reached one is computed from
the inputs. A dependency pass over the jaxpr of the gradient tells the two apart at trace time, on
the jaxpr that the step then runs, so neither the trace nor the step pays twice.
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


def value_grad_and_reached(loss_fn: Callable[..., tuple[jax.Array, Any]], params: Any, *args: Any
                           ) -> tuple[tuple[jax.Array, Any], Any, Any]:
    """((loss, aux), gradient, reached) of loss_fn(params, *args) = (loss, aux) with respect to `params`.

    `reached` is a tree of bools like `params`: whether the gradient reaches each leaf. The gradient
    is traced once; its jaxpr is analysed, then evaluated into the caller's trace.
    """
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
    closed, out_shapes = jax.make_jaxpr(value_and_grad, return_shape=True)(params, *args)
    flat_outputs = jex_core.jaxpr_as_fun(closed)(*jax.tree_util.tree_leaves((params, *args)))
    (loss_and_aux, grads) = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shapes), flat_outputs)
    flags = _dependent_outputs(closed.jaxpr, [True] * len(closed.jaxpr.invars))
    params_def = jax.tree_util.tree_structure(params)
    reached = jax.tree_util.tree_unflatten(params_def, flags[len(flags) - params_def.num_leaves:])
    return loss_and_aux, grads, reached
