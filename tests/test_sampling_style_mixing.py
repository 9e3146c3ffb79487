"""Style mixing and latent directions, checked on the ws that reach each synthesis layer."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.networks.layers import FullyConnectedLayer
from stylegan_jax.sampling import compute_ws, generate_images, mix_ws, move_ws, sefa, style_layers, style_mixing
from test_sampling_nets import sg2, sg3

ROWS, COLS = [85, 100], [55, 821, 7]


def _ws_reaching_layers(G, variables, ws):
    """{layer path: [N, w_dim]} of the w fed to the style affine of every synthesis layer."""
    def run(variables, ws):
        seen = {}

        def record(next_fun, args, kwargs, context):
            module = context.module
            if isinstance(module, FullyConnectedLayer) and module.name == "affine":
                seen["/".join(module.scope.path[:-1])] = args[0]
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(record):
            G.apply(variables, ws, method="synthesis")
        return seen

    return {tuple(name.split("/")): np.asarray(w) for name, w in jax.jit(run)(variables, jnp.asarray(ws)).items()}


@pytest.mark.parametrize("col_styles", [[0, 1, 2, 3], [4, 5], [1, 3]], ids=["coarse", "middle", "sparse"])
def test_mixed_layers_get_column_ws_and_the_others_row_ws(col_styles):
    G, variables = sg2()
    row_ws, col_ws = compute_ws(G, variables, ROWS), compute_ws(G, variables, COLS)
    mixed = mix_ws(row_ws, col_ws, col_styles).reshape(-1, G.num_ws, G.w_dim)
    seen = _ws_reaching_layers(G, variables, mixed)
    layers = style_layers(G, variables["params"])
    assert sorted(seen) == sorted(layer.path for layer in layers)
    assert sorted({layer.ws_index for layer in layers}) == list(range(G.num_ws))
    for layer in layers:
        fed = seen[layer.path].reshape(len(ROWS), len(COLS), G.w_dim)
        source = col_ws[None, :] if layer.ws_index in col_styles else row_ws[:, None]
        np.testing.assert_array_equal(fed, np.broadcast_to(source[..., layer.ws_index, :], fed.shape))
        if layer.ws_index in col_styles:  # a mixed layer is shared down each column
            assert all(np.array_equal(fed[0, c], fed[r, c]) for r in range(len(ROWS)) for c in range(len(COLS)))


def test_style_mixing_figure():
    G, variables = sg2()
    result = style_mixing(G, variables, ROWS, COLS, [0, 1, 2, 3], truncation_psi=0.7)
    assert set(result.images) == {(s, s) for s in ROWS + COLS} | {(r, c) for r in ROWS for c in COLS}
    ws = compute_ws(G, variables, ROWS + COLS, truncation_psi=0.7)
    plain = generate_images(G, variables, ws=ws)
    mixed = generate_images(G, variables, ws=mix_ws(ws[:2], ws[2:], [0, 1, 2, 3]).reshape(-1, *ws.shape[1:]))
    for i, seed in enumerate(ROWS + COLS):
        np.testing.assert_array_equal(result.images[(seed, seed)], plain[i])
    np.testing.assert_array_equal(result.images[(100, 821)], mixed[1 * 3 + 1])
    res = G.img_resolution
    assert result.grid.shape == (3 * res, 4 * res, 3)
    assert not result.grid[:res, :res].any()  # black corner
    np.testing.assert_array_equal(result.grid[:res, 2 * res:3 * res], result.images[(821, 821)])
    np.testing.assert_array_equal(result.grid[2 * res:, :res], result.images[(100, 100)])
    np.testing.assert_array_equal(result.grid[res:2 * res, 3 * res:], result.images[(85, 7)])


@pytest.mark.parametrize("net", [sg2, sg3], ids=["sg2", "sg3"])
def test_sefa_directions_are_the_principal_axes_of_the_stacked_affines(net):
    G, variables = net()
    directions, eigenvalues = sefa(G, variables)
    assert directions.shape == (G.w_dim, G.w_dim)
    np.testing.assert_allclose(directions @ directions.T, np.eye(G.w_dim), atol=1e-5)
    assert np.all(np.diff(eigenvalues) <= 1e-9)
    chosen = [layer for layer in style_layers(G, variables["params"]) if not layer.is_torgb]
    weights = []
    for layer in chosen:
        node = variables["params"]
        for key in layer.path:
            node = node[key]
        weight = np.asarray(node["affine"]["weight"], np.float64)
        weights.append(weight / np.linalg.norm(weight, axis=1, keepdims=True))
    singular = np.linalg.svd(np.concatenate(weights), compute_uv=False)
    np.testing.assert_allclose(eigenvalues, singular ** 2, rtol=1e-6)
    coarse, _ = sefa(G, variables, ws_indices=[0, 1])
    assert not np.allclose(np.abs(coarse[0]), np.abs(directions[0]))


def test_style_layers_mark_torgb():
    G, variables = sg3()
    layers = style_layers(G, variables["params"])
    assert [layer.ws_index for layer in layers] == [1, 2, 3, 4, 5]
    assert [layer.is_torgb for layer in layers] == [False] * 4 + [True]


def test_move_ws_moves_only_the_chosen_ws():
    ws = np.zeros((2, 6, 4), np.float32)
    direction = np.array([3.0, 0, 4.0, 0])
    moved = move_ws(ws, direction, 2.0, ws_indices=[0, 1])
    np.testing.assert_allclose(moved[:, :2], np.broadcast_to([1.2, 0, 1.6, 0], (2, 2, 4)), rtol=1e-6)
    assert not moved[:, 2:].any() and not ws.any()
    np.testing.assert_allclose(move_ws(ws, direction, -1.0), np.broadcast_to([-0.6, 0, -0.8, 0], ws.shape))
