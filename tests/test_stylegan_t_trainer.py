"""StyleGAN-T training (training/stylegan_t_trainer.py): config checks, text conditioning, frozen towers read
from their files, and one iteration of the official D-then-G phases."""
import os

import torchvision_stub

torchvision_stub.install()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
from jax.sharding import Mesh  # noqa: E402

from stylegan_jax.configs_common import sibling_config  # noqa: E402
from stylegan_jax.convert.state_dict import build_network  # noqa: E402
from stylegan_jax.networks.stylegan_t import normalize_text_embedding  # noqa: E402
from stylegan_jax.perceptual import clip_image, clip_text  # noqa: E402
from stylegan_jax.training import config as config_lib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RES = 16
BATCH = 2
SIZES = (32, 2, 1, 16)  # width, heads, layers, embed_dim of the CLIP towers
CAPTIONS = ["a photo of a 34 year old asian woman", "a photo of a 1 year old baby boy"]


def _captioned_folder(root):
    root.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        PIL.Image.fromarray(rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8)).save(root / f"{i}.png")
        (root / f"{i}.txt").write_text(CAPTIONS[i % 2])
    return root


def _config(folder, **text):
    c = sibling_config(os.path.join(ROOT, "configs", "x.py"), "utkface_text_tiny.py")
    c.dataset.path = str(folder)
    c.dataset.resolution = RES
    c.batch_size = BATCH
    c.model.channel_base, c.model.channel_max = 512, 32
    c.text.clip_sizes = SIZES
    c.text.update(text)
    return c


def test_config_errors_name_the_key(tmp_path):
    folder = _captioned_folder(tmp_path / "caps")
    cases = [({"model.arch": "stylegan2"}, "config.dataset.captions needs model.arch 'stylegan_t'"),
             ({"text.clip_weights": str(tmp_path / "none.pt")}, "config.text.clip_weights: no such file"),
             ({"text.dino_weights": str(tmp_path / "none.pth")}, "config.text.dino_weights: no such file"),
             ({"text.clip_sizes": (30, 4, 1, 16)}, "config.text.clip_sizes must be"),
             ({"text.clip": "ViT-H-14"}, "config.text.clip must be one of"),
             ({"metrics": ("eqt50k_int",)}, "config.metrics cannot hold equivariance metrics for StyleGAN-T"),
             ({"augment.mode": "ada"}, "config.augment.mode must be 'none'"),
             ({"model.channel_max": 16}, r"block widths \[16\]: each must be a multiple of its 32 GroupNorm"),
             ({"dataset.captions": False, "text.clip_weight": 0.1}, "config.text.clip_weight must be >= 0, and 0")]
    for overrides, message in cases:
        config = _config(folder)
        for key, value in overrides.items():
            section, name = key.rsplit(".", 1) if "." in key else (None, key)
            (config[section] if section else config)[name] = value
        with pytest.raises(ValueError, match=message) as info:
            config_lib.validate_config(config, 1)
        assert "\n" not in str(info.value)
    config_lib.validate_config(_config(folder), 2)


def test_network_specs_take_the_text_embedding(tmp_path):
    config = _config(tmp_path)
    (g_class, g_kwargs), (d_class, d_kwargs) = config_lib.network_specs(config, 77, 3)
    G, D = build_network(g_class, g_kwargs), build_network(d_class, d_kwargs)
    assert (G.c_dim, D.c_dim, G.z_dim, G.settings["num_res_blocks"]) == (SIZES[3], SIZES[3], 64, 1)
    assert (G.img_resolution, D.img_resolution, D.p_crop) == (RES, RES, 0.5)
    config.dataset.captions = False
    (_, g_kwargs), (_, d_kwargs) = config_lib.network_specs(config, 0, 3)
    assert build_network(g_class, g_kwargs).c_dim == 0 and d_kwargs["c_dim"] == 0


def _write_clip(path):
    """An open_clip CLIP of SIZES (image tower at 224 px, 32-px patches), random weights, as a torch file."""
    open_clip = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    width, heads, layers, embed_dim = SIZES
    torch.manual_seed(0)
    model = open_clip.model.CLIP(
        embed_dim=embed_dim, quick_gelu=True,
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=layers, width=width, head_width=width // heads,
                                                 patch_size=32, image_size=224),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=width, heads=heads,
                                             layers=layers))
    torch.save(dict(model.state_dict()), path)


def _write_dino(path):
    timm = pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    torch.save(timm.create_model("vit_small_patch16_224", pretrained=False).state_dict(), path)


@pytest.fixture(scope="module")
def iteration(tmp_path_factory):
    """One iteration on two devices with the frozen networks read from files: (trainer, state before, after,
    metrics, token ids of the batch)."""
    from stylegan_jax.perceptual.clip_tokenizer import tokenize
    from stylegan_jax.training.loop import make_trainer

    root = tmp_path_factory.mktemp("sgt")
    _write_clip(root / "clip.pt")
    _write_dino(root / "dino.pth")
    config = _config(root, clip_weights=str(root / "clip.pt"), dino_weights=str(root / "dino.pth"))
    config_lib.validate_config(config, 2)
    g_spec, d_spec = config_lib.network_specs(config, 77, 3)
    trainer = make_trainer(config, build_network(*g_spec), build_network(*d_spec), mesh=Mesh(jax.devices()[:2],
                                                                                               ("data",)))
    before = trainer.init_state(0)
    before = jax.tree_util.tree_map(np.asarray, before)  # host copies: the step donates its input
    tokens = tokenize(CAPTIONS).astype(np.float32)
    images = np.random.default_rng(1).integers(0, 256, (BATCH, RES, RES, 3), dtype=np.uint8)
    shard = trainer.shard_batch
    state, metrics = trainer.train_step(jax.tree_util.tree_map(jnp.asarray, before), 0, 0, shard(images),
                                        shard(tokens), (shard(tokens[::-1]),) * 2, config.ema_kimg, 0.05)
    return trainer, before, jax.tree_util.tree_map(np.asarray, state), jax.device_get(metrics), tokens, root


def test_frozen_networks_come_from_their_files(iteration):
    trainer, before, _, _, _, root = iteration
    from stylegan_jax.networks.stylegan_t_d import load_dino_variables

    frozen = before.d["frozen"]
    text = clip_text.load_clip_text(root / "clip.pt", trainer.towers.text)[1]["params"]
    image = clip_image.load_clip_image(root / "clip.pt", trainer.towers.image)[1]["params"]
    dino = load_dino_variables(root / "dino.pth")
    for ours, theirs in ((frozen["clip_text"], text), (frozen["clip_image"], image), (frozen["dino"]["net"], dino)):
        jax.tree_util.tree_map(np.testing.assert_array_equal, ours, theirs)


def test_captions_condition_g_and_d_through_the_text_tower(iteration):
    trainer, before, _, _, tokens, _ = iteration
    embedding = np.asarray(trainer.generator_conditioning(before, tokens))
    expected = trainer.text_tower.apply({"params": before.d["frozen"]["clip_text"]}, tokens.astype(np.int32))
    np.testing.assert_allclose(embedding, normalize_text_embedding(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(embedding[0], embedding[1])  # two captions, two embeddings


def test_one_iteration_trains_heads_and_generator_only(iteration):
    trainer, before, after, metrics, _, _ = iteration
    assert [p.name for p in trainer.phases] == ["Dmain", "Gmain"]  # official order: D, then G
    assert bool(metrics["finite/Dmain"]) and bool(metrics["finite/Gmain"])
    for key in ("loss/D", "loss/G", "loss/G_clip", "scores/real", "scores/fake"):
        assert np.isfinite(metrics[key]), key
    # The guidance loss is a squared angle: in [0, pi^2].
    assert 0 < metrics["loss/G_clip"] <= np.pi ** 2
    jax.tree_util.tree_map(np.testing.assert_array_equal, after.d["frozen"], before.d["frozen"])
    changed = lambda a, b: any(not np.array_equal(x, y) for x, y in
                               zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert changed(after.d["params"], before.d["params"]) and changed(after.g["params"], before.g["params"])
    assert changed(after.d["spectral"], before.d["spectral"])
    # The mapping's x_avg left zero (official: every G call in training mode updates it).
    assert not np.any(before.g["buffers"]["mapping"]["x_avg"])
    assert np.all(np.isfinite(after.g["buffers"]["mapping"]["x_avg"])) and np.any(after.g["buffers"]["mapping"]["x_avg"])
    assert int(after.step) == 1 and int(after.nimg) == BATCH


def _saved_run(iteration, workdir):
    """The iteration's state saved as a training run folder (checkpoint and metadata, as the loop writes them)."""
    import json

    from stylegan_jax import checkpoint
    from stylegan_jax.convert.state_dict import network_spec

    trainer, _, after, _, _, root = iteration
    config = _config(root, clip_weights=str(root / "clip.pt"), dino_weights=str(root / "dino.pth"))
    meta = dict(config=json.loads(config.to_json()), step=1, nimg=BATCH,
                networks={"G": list(network_spec(trainer.G)), "D": list(network_spec(trainer.D))})
    manager = checkpoint.open_manager(str(workdir))
    checkpoint.save(manager, after, meta)
    manager.wait_until_finished()
    return str(workdir)


def test_prompts_sample_the_run_with_its_text_tower(iteration, tmp_path, capsys):
    from stylegan_jax import generate
    from stylegan_jax.sampling import prompts
    from stylegan_jax.sampling.render import generate_images

    trainer, _, after, _, tokens, _ = iteration
    workdir = _saved_run(iteration, tmp_path / "run")
    encoder = prompts.prompt_encoder(workdir)
    expected = np.asarray(trainer.generator_conditioning(after, tokens))
    np.testing.assert_allclose(encoder(CAPTIONS), expected, rtol=1e-5, atol=1e-6)

    out = tmp_path / "out"
    argv = [f"--network={workdir}", "--seeds=3,5", "--grid", f"--outdir={out}"]
    assert generate.main(argv + ["--prompt", CAPTIONS[0], "--prompt", CAPTIONS[1]]) == 0
    G = trainer.G
    for index in range(2):
        want = generate_images(G, after.g_ema, [3, 5], c=expected[index])
        for seed, image in zip((3, 5), want):
            got = np.asarray(PIL.Image.open(out / f"prompt{index:02d}-seed{seed:04d}.png"))
            np.testing.assert_array_equal(got, image)
    assert np.asarray(PIL.Image.open(out / "grid.png")).shape == (2 * RES, 2 * RES, 3)  # a row per prompt
    assert (out / "prompts.txt").read_text().splitlines() == CAPTIONS

    capsys.readouterr()
    cases = [([], "the generator is text-conditional (StyleGAN-T): give --prompt TEXT"),
             (["--prompt", "x", "--class=1"], "--prompt takes --seeds (not --projected-w or --class)"),
             (["--prompt", "x", f"--clip={tmp_path / 'none.pt'}"], "none.pt"),
             (["--prompt", "x", "--step=7"], "checkpoint step 7 not found")]
    for extra, message in cases:
        assert generate.main(argv + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_prompts_need_a_text_tower_and_a_text_generator(iteration, tmp_path):
    from stylegan_jax.sampling import prompts

    trainer, _, _, _, _, root = iteration
    with pytest.raises(ValueError, match="give the CLIP weights file, or a StyleGAN-T training run folder"):
        prompts.prompt_encoder(root / "clip.pt")
    text, variables = clip_text.load_clip_text(root / "clip.pt", trainer.towers.text)
    encoder = prompts.PromptEncoder(text, variables["params"])
    with pytest.raises(ValueError, match="needs? a text-conditional StyleGAN-T generator"):
        prompts.prompt_conditioning(build_network("training.networks_stylegan2.Generator", dict(
            z_dim=8, c_dim=SIZES[3], w_dim=8, img_resolution=8, img_channels=3)), encoder, ["x"])
    with pytest.raises(ValueError, match="takes 16-wide text embeddings but the CLIP text tower gives 32-wide"):
        wide = clip_text.CLIPTextTower(clip_text.text_config("ViT-B-32", (32, 2, 1, 32)))
        prompts.prompt_conditioning(trainer.G, prompts.PromptEncoder(wide, None), ["x"])


def test_metrics_draw_captions_from_the_dataset_and_embed_them(iteration, tmp_path):
    from stylegan_jax.eval.inputs import dataset_source, generator_source, latents_and_labels
    from stylegan_jax.networks.generation import generate
    from stylegan_jax.perceptual.clip_tokenizer import tokenize

    trainer, _, after, _, _, _ = iteration
    config = _config(_captioned_folder(tmp_path / "caps"))
    real = dataset_source(config.dataset, batch_size=2)
    np.testing.assert_array_equal(real.labels, tokenize([CAPTIONS[i % 2] for i in range(4)]))
    encoder = trainer.prompt_encoder(after)
    source = generator_source(trainer.G, after.g_ema, batch_size=4, prompts=encoder)
    assert source.c_dim == 77  # the labels are token ids; G sees their embeddings
    z, labels = latents_and_labels(jax.random.key(3), source.z_dim, source.c_dim, real.labels, 4)
    embedded = normalize_text_embedding(trainer.text_tower.apply({"params": after.d["frozen"]["clip_text"]},
                                                                 np.asarray(labels, np.int32)))
    np.testing.assert_allclose(source.generate(z, labels), generate(trainer.G, after.g_ema, z, embedded),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(source.mapping(z, labels),
                               trainer.G.apply(after.g_ema, z, embedded, method="mapping"), rtol=1e-5, atol=1e-6)
