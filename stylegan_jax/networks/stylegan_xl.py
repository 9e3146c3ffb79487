"""StyleGAN-XL generators: class-embedding mapping, StyleGAN3 synthesis, progressive superresolution.

StyleGAN-XL (Sauer et al., 2022) keeps StyleGAN3's synthesis network and changes the mapping: a
label picks a row of a class-embedding table (pretrained ImageNet class embeddings in the official
runs), which is projected to z's size, normalised and concatenated with the normalised z; w_avg is
tracked per class and truncation pulls towards the label's own centre. Resolution grows in stages:
a SuperresGenerator reuses a trained generator (the stem) without its critically sampled layers and
appends new head layers whose frequency plan continues from the stem's last kept layer; a stage can
itself serve as the stem of the next one.

Names and layouts follow the official state dicts of training.networks_stylegan3_resetting
('mapping.embed.weight', 'mapping.embed_proj.weight', 'mapping.w_avg', 'synthesis.L5_36_16.weight',
...), so `stylegan_jax.convert.from_official_state_dict` loads them; images are NHWC.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import flax.core
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.networks.layers import BUFFERS, FullyConnectedLayer, is_unit, truncate
from stylegan_jax.networks.stylegan3 import (
    Generator as StyleGAN3Generator, LayerSchedule, SynthesisLayer, SynthesisNetwork, layer_arguments, layer_schedule)
from stylegan_jax.ops.normalization import normalize_2nd_moment

# The official class embeddings (in_embeddings/tf_efficientnet_lite0.pkl): 1000 ImageNet classes x 320.
DEFAULT_NUM_EMBEDDINGS = 1000
DEFAULT_EMBEDDING_DIM = 320
SUPPORTED_UP_FACTORS = (2, 4, 8, 16)
# The official compute_superres_filterparams is called without its num_critical argument, so the
# cutoffs of every head climb over head_layers - 2 layers whatever the stem's num_critical (which
# still decides which head layers are critically sampled).
HEAD_CLIMB_CRITICAL = 2
# The official head layers are built with the stem's conv_kernel and use_radial_filters only; the
# other SynthesisLayer arguments keep their defaults, whatever the stem was trained with.
HEAD_LAYER_DEFAULTS = dict(filter_size=6, lrelu_upsampling=2, conv_clamp=256, magnitude_ema_beta=0.999)


class ClassEmbedding(nn.Module):
    """The class-embedding table `weight` [num_embeddings, embedding_dim] (torch.nn.Embedding's layout
    and N(0, 1) initialisation); calling it returns the table."""

    num_embeddings: int
    embedding_dim: int

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("weight", nn.initializers.normal(1.0), (self.num_embeddings, self.embedding_dim))


class ClassMappingNetwork(nn.Module):
    """StyleGAN-XL's mapping: normalised z, concatenated (with labels) with the normalised projection
    of the label's class embedding, then `num_layers` lrelu layers; w_avg is [c_dim, w_dim] per
    class with labels ([w_dim] without), updated sample by sample in batch order like the official one.

    Labels are one-hot rows of c (argmax picks the class). The embedding table exists, unused, without
    labels too, as in the official state dicts. `rand_embedding` is the official flag for starting
    from random instead of pretrained embeddings; ours always start random (pretrained ones arrive
    with an official state dict), so it is accepted and has no effect here.
    """

    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    num_layers: int = 2
    lr_multiplier: float = 0.01
    w_avg_beta: float = 0.998
    rand_embedding: bool = False
    num_embeddings: int = DEFAULT_NUM_EMBEDDINGS
    embedding_dim: int = DEFAULT_EMBEDDING_DIM

    @nn.compact
    def __call__(self, z: jax.Array, c: jax.Array | None, truncation_psi: Any = 1.0,
                 truncation_cutoff: int | None = None, update_emas: bool = False) -> jax.Array:
        if self.c_dim > self.num_embeddings:
            raise ValueError(f"c_dim={self.c_dim} labels need at least as many class embeddings, "
                             f"got num_embeddings={self.num_embeddings}")
        if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [N, {self.z_dim}], got {None if z is None else z.shape}")
        table = ClassEmbedding(self.num_embeddings, self.embedding_dim, name="embed")()
        x = normalize_2nd_moment(z.astype(jnp.float32))
        labels = None
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape != (z.shape[0], self.c_dim):
                raise ValueError(f"c must have shape [{z.shape[0]}, {self.c_dim}], got {None if c is None else c.shape}")
            labels = jnp.argmax(c, axis=1)
            y = FullyConnectedLayer(self.embedding_dim, self.z_dim, activation="lrelu",
                                    name="embed_proj")(jnp.take(table, labels, axis=0))
            x = jnp.concatenate([x, normalize_2nd_moment(y)], axis=1)

        features = [self.z_dim * (2 if self.c_dim > 0 else 1)] + [self.w_dim] * self.num_layers
        for idx in range(self.num_layers):
            x = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                    lr_multiplier=self.lr_multiplier, name=f"fc{idx}")(x)

        w_avg = self.variable(BUFFERS, "w_avg", jnp.zeros,
                              (self.c_dim, self.w_dim) if self.c_dim > 0 else (self.w_dim,), jnp.float32)
        if update_emas and self.is_mutable_collection(BUFFERS):
            w_avg.value = _updated_w_avg(w_avg.value, jax.lax.stop_gradient(x), labels, self.w_avg_beta)

        ws = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, self.w_dim))
        if not is_unit(truncation_psi):
            centre = w_avg.value if labels is None else jnp.take(w_avg.value, labels, axis=0)[:, None, :]
            ws = truncate(ws, centre, truncation_psi, truncation_cutoff)
        return ws


def _updated_w_avg(w_avg: jax.Array, w: jax.Array, labels: jax.Array | None, beta: float) -> jax.Array:
    """The official EMA step: towards the batch mean, or per class one sample after the other."""
    if labels is None:
        mean = jnp.mean(w, axis=0)
        return mean + (w_avg - mean) * beta

    def step(avg, sample):
        w_i, label = sample
        return avg.at[label].set(w_i + (avg[label] - w_i) * beta), None

    return jax.lax.scan(step, w_avg, (w, labels))[0]


def superres_schedule(last_layer: Mapping[str, Any], img_resolution: int, img_channels: int,
                      channel_base: float, channel_max: int, head_layers: int, last_stopband_rel: float,
                      margin_size: int) -> LayerSchedule:
    """The frequency plan of a superresolution head of head_layers + 1 layers (the last is ToRGB)
    that continues from `last_layer` (the SynthesisLayer arguments of the stem's last kept layer).

    As in the official compute_superres_filterparams: cutoff and stopband climb geometrically from
    the stem's output cutoff and stopband (cutoff + half width) to the new Nyquist frequency (and
    that times last_stopband_rel); entry 0 keeps the stem's sampling rate and channels; the rest
    follows the rules of `layer_schedule`.
    """
    if head_layers <= HEAD_CLIMB_CRITICAL:
        raise ValueError(f"head_layers must exceed {HEAD_CLIMB_CRITICAL}, got {head_layers}")
    first_cutoff = last_layer["out_cutoff"]
    first = np.array([[first_cutoff], [last_layer["out_half_width"] + first_cutoff]])
    nyquist = img_resolution / 2
    last = np.array([[nyquist], [nyquist * last_stopband_rel]])
    climb = np.minimum(np.arange(head_layers + 1) / (head_layers - HEAD_CLIMB_CRITICAL), 1)
    cutoffs, stopbands = first * (last / first) ** climb
    rates = np.exp2(np.ceil(np.log2(np.minimum(2 * stopbands, img_resolution))))
    rates[0] = last_layer["out_sampling_rate"]
    sizes = rates + 2 * margin_size
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum(channel_base / (2 * cutoffs), channel_max))
    channels[0] = last_layer["out_channels"]
    channels[-1] = img_channels
    return LayerSchedule(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=rates,
                         half_widths=np.maximum(stopbands, rates / 2) - cutoffs, sizes=sizes,
                         channels=channels, shapes=np.stack([sizes, sizes], axis=1).astype(int))


def _as_stages(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),)


class SuperresSynthesisNetwork(SynthesisNetwork):
    """The synthesis of a SuperresGenerator: the stem's input and layers up to its first critically
    sampled one, then one head per stage (all but the last also cut at their first critically sampled
    layer), named on from the stem's, so the stem's layers keep their names."""

    head_layers: tuple[int, ...] = (7,)
    up_factors: tuple[int, ...] = (2,)

    @property
    def stem_resolution(self) -> int:
        """The output resolution of the stem (the first stage)."""
        return int(self.img_resolution) // int(np.prod(self.up_factors))

    @property
    def num_ws(self) -> int:
        """Number of w vectors consumed: the input and every layer."""
        return 1 + len(self.plan_layers()[1])

    @nn.nowrap
    def plan_layers(self) -> tuple[LayerSchedule, list[tuple[str, dict[str, Any]]]]:
        """The stem's plan (entry 0 describes the input) and the (name, SynthesisLayer arguments) of
        every layer in ws order: the stem's kept layers, then each stage's head."""
        cfg = self.config
        if not isinstance(self.img_resolution, (int, np.integer)):
            raise ValueError(f"superresolution needs a square img_resolution (one int), got {self.img_resolution}")
        if len(self.head_layers) != len(self.up_factors) or not self.head_layers:
            raise ValueError(f"need one head_layers per up_factor, got {self.head_layers} and {self.up_factors}")
        bad = [f for f in self.up_factors if f not in SUPPORTED_UP_FACTORS]
        if bad or self.stem_resolution * int(np.prod(self.up_factors)) != self.img_resolution:
            raise ValueError(f"up_factors {self.up_factors} must be among {SUPPORTED_UP_FACTORS} and divide "
                             f"img_resolution {self.img_resolution}")
        resolution = self.stem_resolution
        plan = layer_schedule(resolution, self.img_channels, cfg.channel_base, cfg.channel_max, cfg.num_layers,
                              cfg.num_critical, cfg.first_cutoff, cfg.first_stopband, cfg.last_stopband_rel,
                              cfg.margin_size)
        kept = lambda layers: [(name, kwargs) for name, kwargs in layers if not kwargs["is_critically_sampled"]]
        layers = kept(layer_arguments(plan, cfg, self.w_dim, resolution))
        head_config = dataclasses.replace(cfg, **HEAD_LAYER_DEFAULTS)
        for stage, (heads, up) in enumerate(zip(self.head_layers, self.up_factors)):
            resolution *= up
            head_plan = superres_schedule(layers[-1][1], resolution, self.img_channels, cfg.channel_base,
                                          cfg.channel_max, heads, cfg.last_stopband_rel, cfg.margin_size)
            head = layer_arguments(head_plan, head_config, self.w_dim, resolution, first_index=len(layers) + 1)
            layers += head if stage == len(self.head_layers) - 1 else kept(head)
        return plan, layers


class Generator(StyleGAN3Generator):
    """StyleGAN-XL generator: ClassMappingNetwork ('mapping') and StyleGAN3 synthesis ('synthesis').

    Takes the official constructor arguments (those of the StyleGAN3 Generator; mapping_kwargs
    num_layers defaults to 2 and may set w_avg_beta, lr_multiplier, rand_embedding) plus, in
    mapping_kwargs, the class-embedding table's num_embeddings and embedding_dim (default 1000 x 320,
    the official table's; `init_kwargs_from_state_dict` reads them off a state dict).
    """

    @nn.nowrap
    def _synthesis_network(self, **kwargs: Any) -> SynthesisNetwork:
        return SynthesisNetwork(self.w_dim, self.img_resolution, self.img_channels, self.synthesis_config(),
                                name="synthesis", **kwargs)

    @nn.nowrap
    def synthesis_layers(self) -> list[tuple[str, dict[str, Any]]]:
        """The (name, SynthesisLayer arguments) of every synthesis layer, in ws order."""
        return self._synthesis_network(parent=None).plan_layers()[1]

    def setup(self):
        self.synthesis_network = self._synthesis_network()
        self.mapping_network = ClassMappingNetwork(
            z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
            **{"num_layers": 2, **dict(self.mapping_kwargs)}, name="mapping")


class SuperresGenerator(Generator):
    """StyleGAN-XL superresolution stage(s) on top of a stem generator of the same hyperparameters.

    The fields are the stem's (a Generator's), except img_resolution, which is the output's, plus
    head_layers and up_factor: one int each for one stage (the official arguments), or one tuple
    entry per stage, earliest first, when a stage grew from another stage. path_stem is the
    official argument naming the stem's pickle; it is recorded, never read (`grow_from_stem` or an
    official state dict provides the stem's weights).
    """

    head_layers: int | tuple[int, ...] = 7
    up_factor: int | tuple[int, ...] = 2
    path_stem: str | None = None

    def __post_init__(self):
        # Tuples, so that the module stays hashable (e.g. after a JSON round trip of its fields).
        for field in ("head_layers", "up_factor"):
            value = getattr(self, field)
            if isinstance(value, list):
                object.__setattr__(self, field, tuple(value))
        super().__post_init__()

    @nn.nowrap
    def _synthesis_network(self, **kwargs: Any) -> SuperresSynthesisNetwork:
        return SuperresSynthesisNetwork(self.w_dim, self.img_resolution, self.img_channels,
                                        self.synthesis_config(), head_layers=_as_stages(self.head_layers),
                                        up_factors=_as_stages(self.up_factor), name="synthesis", **kwargs)

    @property
    def num_ws(self) -> int:
        """Number of w vectors the synthesis network consumes."""
        return self._synthesis_network(parent=None).num_ws

    @nn.nowrap
    def layer_names(self) -> tuple[list[str], list[str]]:
        """(names of the layers taken over from the stem, names of the last stage's head layers)."""
        layers = [name for name, _ in self.synthesis_layers()]
        head = _as_stages(self.head_layers)[-1] + 1
        return layers[:-head], layers[-head:]


def init_kwargs_from_state_dict(init_kwargs: Mapping[str, Any], state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """`init_kwargs` with the class-embedding table's size, which official constructors do not
    record (the table comes from a file), read off the state dict's 'mapping.embed.weight'."""
    kwargs = dict(init_kwargs)
    table = state_dict.get("mapping.embed.weight")
    if table is not None and np.ndim(table) == 2:
        mapping_kwargs = dict(kwargs.get("mapping_kwargs") or {})
        mapping_kwargs.setdefault("num_embeddings", int(np.shape(table)[0]))
        mapping_kwargs.setdefault("embedding_dim", int(np.shape(table)[1]))
        kwargs["mapping_kwargs"] = mapping_kwargs
    return kwargs


def superres_init_kwargs(stem_init_kwargs: Mapping[str, Any], init_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Our SuperresGenerator's kwargs from its stem's (a Generator's, or an earlier stage's) and the
    official SuperresGenerator's own (img_resolution, head_layers, up_factor, path_stem; c_dim and
    img_channels, if given, must match the stem's)."""
    kwargs = {key: value for key, value in stem_init_kwargs.items() if key not in ("head_layers", "up_factor")}
    for key in ("c_dim", "img_channels"):
        if key in init_kwargs and init_kwargs[key] != stem_init_kwargs.get(key):
            raise ValueError(f"{key}={init_kwargs[key]} differs from the stem's {stem_init_kwargs.get(key)}")
    stem_heads = _as_stages(stem_init_kwargs["head_layers"]) if "head_layers" in stem_init_kwargs else ()
    stem_ups = _as_stages(stem_init_kwargs["up_factor"]) if "up_factor" in stem_init_kwargs else ()
    heads = stem_heads + _as_stages(init_kwargs.get("head_layers", 7))
    ups = stem_ups + _as_stages(init_kwargs.get("up_factor", 2))
    expected = stem_init_kwargs["img_resolution"] * ups[-1]
    if init_kwargs.get("img_resolution", expected) != expected:
        raise ValueError(f"img_resolution {init_kwargs['img_resolution']} is not the stem's "
                         f"{stem_init_kwargs['img_resolution']} times up_factor {ups[-1]}")
    kwargs.update(img_resolution=expected, head_layers=heads[0] if len(heads) == 1 else heads,
                  up_factor=ups[0] if len(ups) == 1 else ups, path_stem=init_kwargs.get("path_stem"))
    return kwargs


# The official stage sizes searched when an official stage's earlier stages must be recovered.
_UP_FACTORS = (2, 4, 8, 16)
_MAX_HEAD_LAYERS = 32


def official_stage_kwargs(stem_init_kwargs: Mapping[str, Any], init_kwargs: Mapping[str, Any],
                          layer_names: Sequence[str]) -> dict[str, Any]:
    """Our SuperresGenerator kwargs of an official stage whose synthesis holds the layers `layer_names`,
    in order. A stage grown from another stage keeps only its own head_layers and up_factor and the
    original stem's kwargs; the earlier stages' ones are recovered, earliest first, as the unique
    ones whose layers continue `layer_names` (official layer names carry index, size and channels)."""
    layer_names = list(layer_names)
    kwargs = dict(stem_init_kwargs)
    final_up = int(init_kwargs.get("up_factor", 2))
    while True:
        if kwargs["img_resolution"] * final_up == init_kwargs.get("img_resolution"):
            last = superres_init_kwargs(kwargs, init_kwargs)
            if [name for name, _ in SuperresGenerator(**last).synthesis_layers()] == layer_names:
                return last
        matches = [stage for stage in _candidate_stages(kwargs, init_kwargs)
                   if layer_names[:len(taken := _taken_layers(stage))] == taken]
        if len(matches) != 1:
            raise ValueError(f"the layers {layer_names} fit {len(matches) or 'no'} chain(s) of superresolution "
                             f"stages from a {stem_init_kwargs.get('img_resolution')}-pixel stem to "
                             f"{init_kwargs.get('img_resolution')} pixels")
        kwargs = matches[0]


def _candidate_stages(kwargs: Mapping[str, Any], final: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every earlier stage on top of `kwargs` that leaves room for the final stage's up_factor."""
    room = final.get("img_resolution", 0) // (kwargs["img_resolution"] * int(final.get("up_factor", 2)))
    return [superres_init_kwargs(kwargs, dict(img_resolution=kwargs["img_resolution"] * up, head_layers=heads,
                                              up_factor=up))
            for up in _UP_FACTORS if room % up == 0 and room >= up
            for heads in range(_fewest_head_layers(kwargs), _MAX_HEAD_LAYERS + 1)]


def _taken_layers(kwargs: Mapping[str, Any]) -> list[str]:
    """The layers of the stage of `kwargs` that a stage grown from it takes over."""
    grown = superres_init_kwargs(kwargs, dict(img_resolution=kwargs["img_resolution"] * 2,
                                              head_layers=_fewest_head_layers(kwargs)))
    return SuperresGenerator(**grown).layer_names()[0]


def _fewest_head_layers(kwargs: Mapping[str, Any]) -> int:
    """A stage's head has more layers than its critically sampled ones."""
    return int(kwargs.get("num_critical", 2)) + 1


def grow_from_stem(stem_module: Generator, stem_variables: Mapping[str, Any], head_layers: int, up_factor: int,
                   key: jax.Array) -> tuple[SuperresGenerator, dict]:
    """A SuperresGenerator `up_factor` times the stem's resolution with a new head of `head_layers`
    layers (plus ToRGB), and its variables: the stem's mapping, input and kept synthesis layers
    (parameters and buffers) copied, the head freshly initialised from `key`, as the official
    SuperresGenerator does. The stem may be a Generator or a SuperresGenerator (the next stage)."""
    if not isinstance(stem_module, Generator):
        raise TypeError(f"the stem must be a stylegan_xl Generator or SuperresGenerator, got {type(stem_module).__name__}")
    fields = {f.name: getattr(stem_module, f.name) for f in dataclasses.fields(stem_module)
              if f.init and f.name not in ("parent", "name")}
    module = SuperresGenerator(**superres_init_kwargs(fields, dict(head_layers=head_layers, up_factor=up_factor)))
    stem_variables = flax.core.unfreeze(stem_variables)
    kept, head = module.layer_names()
    layers = dict(module.synthesis_layers())
    head_variables = _init_layers(tuple((name, layers[name]) for name in head), key)

    variables = {}
    for collection in ("params", "buffers"):
        source = stem_variables[collection]
        synthesis = {name: source["synthesis"][name] for name in ["input", *kept] if name in source["synthesis"]}
        synthesis.update(head_variables.get(collection, {}))
        variables[collection] = {"mapping": source["mapping"], "synthesis": synthesis}
    expected = jax.eval_shape(module.init, {"params": key, "noise": key}, *module.example_inputs())
    return module, {collection: _copied(dict(expected[collection]), variables[collection], collection)
                    for collection in ("params", "buffers")}


def _init_layers(layers: tuple[tuple[str, dict[str, Any]], ...], key: jax.Array) -> dict:
    """Fresh variables of a chain of SynthesisLayers (name, arguments): only these layers are compiled."""
    first = layers[0][1]
    height, width = (first["in_size"], first["in_size"]) if np.ndim(first["in_size"]) == 0 else first["in_size"]
    x = jnp.zeros((1, int(height), int(width), first["in_channels"]), jnp.float32)
    w = jnp.zeros((1, first["w_dim"]), jnp.float32)
    return jax.jit(lambda k: _LayerChain(layers).init({"params": k}, x, w))(key)


class _LayerChain(nn.Module):
    layers: tuple[tuple[str, dict[str, Any]], ...]

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        for name, kwargs in self.layers:
            x = SynthesisLayer(**kwargs, name=name)(x, w)
        return x


def _copied(target: Any, source: Any, where: str) -> Any:
    """`source` as arrays, checked to have the structure, shapes and dtypes of `target` (abstract)."""
    spec = lambda tree: jax.tree_util.tree_map(lambda x: (tuple(np.shape(x)), jnp.dtype(x.dtype)), tree)
    source = jax.tree_util.tree_map(jnp.asarray, source)
    if jax.tree_util.tree_structure(target) != jax.tree_util.tree_structure(source) or spec(target) != spec(source):
        raise ValueError(f"{where}: the stem's variables do not fit the grown network")
    return source


def head_only(superres_module: SuperresGenerator, train_input: bool = False) -> Callable[[tuple[str, ...]], bool]:
    """Whether a parameter (its path of keys in the 'params' collection) trains in official train_head_only:
    the last stage's head layers do; the mapping and the stem's layers do not.

    The official loss freezes the mapping and the non-head layers only, so the synthesis input's
    parameters stay trainable there; `train_input=True` lets them train too, to match it exactly.
    """
    trainable = set(superres_module.layer_names()[1]) | ({"input"} if train_input else set())
    return lambda keys: len(keys) > 1 and keys[0] == "synthesis" and keys[1] in trainable


def head_only_mask(superres_module: SuperresGenerator, params: Any, train_input: bool = False) -> Any:
    """`head_only` as a pytree of bools like `params` (the 'params' collection)."""
    _, head = superres_module.layer_names()
    missing = [name for name in head if name not in params.get("synthesis", {})]
    if missing:
        raise ValueError(f"params lack the head layers {missing}")
    trains = head_only(superres_module, train_input)
    return jax.tree_util.tree_map_with_path(lambda path, _: trains([getattr(p, "key", None) for p in path]), params)
