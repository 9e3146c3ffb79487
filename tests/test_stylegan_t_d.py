"""StyleGAN-T's discriminator (shapes, frozen ViT, spectral norm, heads, input processing),
the area resize, and the CLIP guidance loss by hand."""
import torchvision_stub

torchvision_stub.install()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from stylegan_jax.networks import stylegan_t_d as std  # noqa: E402
from stylegan_jax.ops.resize import area_resize  # noqa: E402
from stylegan_jax.ops.spectral_norm import spectral_normalize  # noqa: E402
from stylegan_jax.perceptual import clip_guidance, clip_image  # noqa: E402

C_DIM = 8
TOKENS = 196  # (224 / 16)^2


@pytest.fixture(scope="module")
def disc_and_vars():
    disc = std.StyleGANTDiscriminator(c_dim=C_DIM, img_resolution=32, img_channels=3)
    variables = jax.jit(disc.init)(jax.random.key(0), *disc.example_inputs(2))
    assert all(not np.any(x) for x in jax.tree_util.tree_leaves(variables["frozen"]))  # zeros until loaded
    # Stand-in for load_dino_variables: small random weights in place of the zeros.
    rng = np.random.default_rng(1)
    frozen = jax.tree_util.tree_map(lambda x: jnp.asarray(0.05 * rng.standard_normal(x.shape), jnp.float32),
                                    variables["frozen"])
    return disc, {**variables, "frozen": frozen}


def test_collections_shapes_frozen_gradient_and_spectral_update(disc_and_vars):
    disc, variables = disc_and_vars
    fresh = jax.eval_shape(disc.init, jax.random.key(0), *disc.example_inputs(2))
    assert set(fresh) == {"params", "frozen", "spectral"}
    assert sorted(fresh["params"]) == [f"head{i}" for i in range(5)]
    net = fresh["frozen"]["dino"]["net"]["params"]
    assert net["pos_embed"].shape == (1, TOKENS + 1, 384) and "blocks_11" in net
    assert fresh["params"]["head0"]["cmapper"]["weight"].shape == (64, C_DIM)
    assert fresh["params"]["head0"]["block1"]["conv"]["kernel"].shape == (9, 384, 384)
    uncond = std.StyleGANTDiscriminator(c_dim=0, img_resolution=32, img_channels=3, hook_patch=False)
    shapes = jax.eval_shape(uncond.init, jax.random.key(0), *uncond.example_inputs(2))
    assert sorted(shapes["params"]) == [f"head{i}" for i in range(4)] and "cmapper" not in shapes["params"]["head0"]

    img = jax.random.uniform(jax.random.key(5), (2, 32, 32, 3), minval=-1, maxval=1)
    c = jax.random.normal(jax.random.key(6), (2, C_DIM))

    def loss(trainable, frozen):
        logits, state = disc.apply({**trainable, "frozen": frozen, "spectral": variables["spectral"]}, img, c,
                                   rngs={"diffaug": jax.random.key(4)}, mutable=["spectral"])
        return jnp.mean(-logits), (logits, state)

    grads, (logits, state) = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(
        {"params": variables["params"]}, variables["frozen"])
    assert logits.shape == (2, 5 * TOKENS) and np.all(np.isfinite(logits))
    head_grads, frozen_grads = grads
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree_util.tree_leaves(frozen_grads))
    assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(head_grads["params"]["head4"]))
    # The u vectors moved by exactly one power iteration of spectral_normalize.
    kernel = variables["params"]["head0"]["cls"]["kernel"]
    u = variables["spectral"]["head0"]["cls"]["u"]
    np.testing.assert_allclose(state["spectral"]["head0"]["cls"]["u"], spectral_normalize(kernel, u)[1], atol=1e-6)
    assert not np.allclose(state["spectral"]["head0"]["cls"]["u"], u)


def test_disc_head_hand_computed():
    """Single channel, batch 2: the normalised head reproduces leaky ReLU / batch-norm / projection by hand."""
    head = std.DiscHead(c_dim=2, cmap_dim=4)
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    c = jax.random.normal(jax.random.key(1), (2, 2))
    variables = jax.jit(head.init)(jax.random.key(2), x, c)
    out = jax.jit(head.apply)(variables, x, c)
    assert out.shape == (2, 5)
    p, s = variables["params"], variables["spectral"]

    def conv(name, h, circular):
        kernel, _ = spectral_normalize(p[name]["conv"]["kernel"] if name != "cls" else p[name]["kernel"],
                                       (s[name]["conv"] if name != "cls" else s[name])["u"])
        k = kernel.shape[0]
        if circular and k > 1:
            h = np.concatenate([h[:, -(k // 2):], h, h[:, :k // 2]], axis=1)
        windows = np.stack([h[:, i:i + h.shape[1] - k + 1] for i in range(k)], axis=2)  # [N, L, k, C]
        bias = (p[name]["conv"] if name != "cls" else p[name])["bias"]
        return np.einsum("nlkc,kco->nlo", windows, np.asarray(kernel)) + np.asarray(bias)

    def block(name, h):
        h = conv(name, h, True)
        h = (h - h.mean(axis=(0, 1))) / np.sqrt(h.var(axis=(0, 1)) + 1e-5)  # one group: batch 2 < 8
        return np.where(h > 0, h, 0.2 * h)

    h = block("block0", np.asarray(x))
    h = (block("block1", h) + h) / np.sqrt(2)
    logits = conv("cls", h, False)
    cmap = np.asarray(c) @ np.asarray(p["cmapper"]["weight"]).T / np.sqrt(2) + np.asarray(p["cmapper"]["bias"])
    expected = np.sum(logits * cmap[:, None, :], axis=-1) / 2.0
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_batch_norm_local_groups():
    x = jax.random.normal(jax.random.key(0), (16, 3, 2)) * jnp.arange(1, 17)[:, None, None]
    bn = std.BatchNormLocal(virtual_bs=8)
    out = np.asarray(bn.apply(bn.init(jax.random.key(1), x), x))
    for group in (out[:8], out[8:]):  # two groups of 8, each normalised on its own
        np.testing.assert_allclose(group.mean(axis=(0, 1)), 0, atol=1e-5)
        np.testing.assert_allclose(group.var(axis=(0, 1)), 1, atol=1e-3)
    with pytest.raises(ValueError, match="equal groups"):
        bn.apply(bn.init(jax.random.key(1), x), x[:9])


def test_crop_and_area_resize_preprocessing():
    rng = np.random.default_rng(0)
    img = jnp.asarray(rng.uniform(-1, 1, (1, 240, 256, 3)), jnp.float32)
    mean, std_ = (np.asarray(v, np.float32) for v in std.feature_nets.IMAGENET)

    def run(p_crop, key=None):
        disc = std.StyleGANTDiscriminator(c_dim=0, img_resolution=(240, 256), img_channels=3, diffaug=False,
                                          p_crop=p_crop)
        out = disc.apply({}, img, method=disc._preprocess, rngs={} if key is None else {"diffaug": key})
        return np.asarray(out) * std_ + mean

    x01 = (np.asarray(img) + 1) / 2
    np.testing.assert_allclose(run(1.0), np.asarray(area_resize(jnp.asarray(x01), 224, 224)), atol=1e-5)  # no rng
    np.testing.assert_allclose(run(0.0, jax.random.key(0)), run(1.0), atol=1e-6)
    offsets = set()
    for seed in range(3):
        crop = run(1.0, jax.random.key(seed))
        row, col = map(int, np.argwhere(np.all(np.isclose(x01[0], crop[0, 0, 0], atol=1e-5), axis=-1))[0])
        np.testing.assert_allclose(crop[0], x01[0, row:row + 224, col:col + 224], atol=1e-5)
        offsets.add((row, col))
    assert len(offsets) > 1


def test_area_resize_equals_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 13, 20, 3)).astype(np.float32)
    for size in ((5, 7), (30, 41), (224, 224)):
        expected = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2)), size=size,
                                                   mode="area").numpy().transpose(0, 2, 3, 1)
        np.testing.assert_allclose(area_resize(jnp.asarray(x), *size), expected, rtol=1e-5, atol=1e-6)



def test_spherical_distance_by_hand():
    x = jnp.asarray([[3.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 0.0]])
    y = jnp.asarray([[0.0, 2.0], [5.0, 0.0], [7.0, 0.0], [-1.0, 0.0]])
    expected = [(np.pi / 2) ** 2, (np.pi / 4) ** 2, 0.0, np.pi ** 2]
    np.testing.assert_allclose(clip_guidance.spherical_distance_loss(x, y), expected, rtol=1e-6, atol=1e-6)


def test_clip_guidance_loss_by_hand():
    mean, std_ = np.asarray(clip_image.CLIP_MEAN), np.asarray(clip_image.CLIP_STD)
    seen = []

    def channel_means(x):  # a stand-in image tower: the per-channel mean of its input
        seen.append(x.shape)
        return jnp.mean(x, axis=(1, 2))

    images = jnp.stack([jnp.full((32, 32, 3), 0.0), jnp.full((32, 32, 3), -1.0)])
    text = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    loss = clip_guidance.clip_guidance_loss(channel_means, images, text, jax.random.key(0))
    embeds = [(0.5 - mean) / std_, (0.0 - mean) / std_]
    cosines = [e @ t / np.linalg.norm(e) for e, t in zip(embeds, np.asarray(text))]
    assert float(loss) == pytest.approx(np.mean(np.arccos(cosines) ** 2), rel=1e-5)
    assert seen == [(2, 224, 224, 3)]


def test_clip_preprocess_crops_64_then_resizes():
    values = np.arange(128 * 96, dtype=np.float32).reshape(1, 96, 128, 1) / (128 * 96)
    img = jnp.asarray(np.repeat(values, 3, axis=-1)) * 2 - 1
    out = np.asarray(clip_guidance.clip_preprocess(img, jax.random.key(3)))
    out01 = out[0, :, :, 0] * clip_image.CLIP_STD[0] + clip_image.CLIP_MEAN[0]
    row, col = map(int, np.argwhere(np.isclose(values[0, :, :, 0], out01[0, 0], atol=1e-6))[0])
    window = values[:, row:row + 64, col:col + 64]
    expected = np.asarray(area_resize(jnp.asarray(window), 224, 224))[0, :, :, 0]
    assert out.shape == (1, 224, 224, 3) and 0 <= row <= 32 and 0 <= col <= 64
    np.testing.assert_allclose(out01, expected, atol=1e-5)
