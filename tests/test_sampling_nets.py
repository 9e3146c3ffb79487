"""Tiny generators shared by the sampling tests (built once per session; this module has no tests)."""
from __future__ import annotations

import functools
import io

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

import official_pickle_writer as writer
from stylegan_jax.convert.state_dict import network_spec, to_official_state_dict
from stylegan_jax.networks import stylegan2, stylegan3

def reference(G, variables, z, c=None, **kwargs) -> np.ndarray:
    """G.apply(variables, z, c, **kwargs) jitted (much faster than eager op by op), as numpy."""
    return np.asarray(jax.jit(functools.partial(G.apply, **kwargs))(variables, jnp.asarray(z), c))


TINY = dict(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
            mapping_kwargs={"num_layers": 2})


def _init(G, seed: int) -> dict:
    """Random variables with images mostly within [-1, 1] (smaller StyleGAN2 toRGB weights), noise that
    matters (non-zero noise strengths) and a non-zero W average."""
    # A jitted init with the 'rbg' PRNG compiles several times faster than threefry or eager init.
    variables = jax.jit(G.init)({"params": jax.random.key(seed, impl="rbg")}, *G.example_inputs())
    params = traverse_util.flatten_dict(variables["params"])
    for name, value in params.items():
        if name[-1] == "noise_strength":
            params[name] = jnp.full_like(value, 0.05)
        elif name[-1] == "weight" and "torgb" in name:
            params[name] = value * 0.3
    return {**variables, "params": traverse_util.unflatten_dict(params),
            "buffers": {**variables["buffers"], "mapping": {"w_avg": jnp.asarray(
                np.random.RandomState(seed).randn(G.w_dim).astype(np.float32) * 0.1)}}}


@functools.lru_cache(maxsize=None)
def sg2():
    """Unconditional StyleGAN2, 16x16, num_ws 6."""
    G = stylegan2.Generator(c_dim=0, **TINY)
    return G, _init(G, 0)


@functools.lru_cache(maxsize=None)
def sg2_conditional():
    """StyleGAN2 with 3 classes."""
    G = stylegan2.Generator(c_dim=3, **TINY)
    return G, _init(G, 1)


@functools.lru_cache(maxsize=None)
def sg3():
    """Unconditional StyleGAN3-T, 16x16, 4 layers, num_ws 6."""
    G = stylegan3.Generator(c_dim=0, num_layers=4, margin_size=2, **TINY)
    return G, _init(G, 2)


def official_pickle(G, variables, raw_variables=None) -> bytes:
    """An official-like snapshot pickle holding G_ema (and G when raw_variables are given), built without torch."""
    class_name, init_kwargs = network_spec(G)
    record = lambda v: writer.network_record(class_name, init_kwargs, to_official_state_dict(G, v))
    networks = {"G_ema": record(variables)} | ({"G": record(raw_variables)} if raw_variables is not None else {})
    f = io.BytesIO()
    writer.dump({**networks, "training_set_kwargs": None}, f)
    return f.getvalue()


def training_checkpoint(workdir, G, variables, step: int = 3) -> None:
    """Writes a training checkpoint (stylegan_jax.checkpoint) whose G_ema is the given generator and whose
    G (the raw, non-EMA generator) has the same structure with other values."""
    import dataclasses

    from stylegan_jax import checkpoint
    from stylegan_jax.train_state import TrainState

    small = {"params": {"x": jnp.zeros(2)}}
    fields = {f.name: small for f in dataclasses.fields(TrainState)}
    raw = jax.tree_util.tree_map(lambda x: x * 0.5 + 0.1, variables)
    state = TrainState(**{**fields, "g": raw, "g_ema": variables, "step": jnp.int32(step)})
    manager = checkpoint.open_manager(str(workdir))
    checkpoint.save(manager, state, {"step": step, "networks": {"G": list(network_spec(G)), "D": ["", {}]}})
    manager.wait_until_finished()
    manager.close()
