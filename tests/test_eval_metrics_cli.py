"""`python -m stylegan_jax.evaluate --metrics=... --network=... --data=...`: loading, sources, output."""
import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import evaluate
import stylegan_jax.eval
from stylegan_jax.perceptual import weight_files
from stylegan_jax.perceptual.lpips import LPIPS_PACKAGE
from stylegan_jax.sampling.export_file import export_generator
from test_eval_vgg16 import _random_tensors
from test_sampling_nets import sg2


@pytest.fixture()
def network_and_data(tmp_path):
    G, variables = sg2()
    network = export_generator(tmp_path / "G.msgpack", G, variables)
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(data / f"{i}.png")
    return G, str(network), str(data)


def test_metrics_of_a_network_on_an_image_folder(network_and_data, tmp_path, monkeypatch):
    G, network, data = network_and_data
    seen = {"names": []}

    def fake_run_metrics(names, options):  # evaluate runs one metric per call, keeping each result at once
        seen["names"] += names
        seen.update(options=options)
        return [dict(metric=n, results={n: 1.5}, total_time=0.1) for n in names]

    monkeypatch.setattr(stylegan_jax.eval, "run_metrics", fake_run_metrics)
    out = tmp_path / "m.jsonl"
    code = evaluate.main(["--metrics=fid50k_full,kid50k_full", f"--network={network}", f"--data={data}",
                          f"--out={out}"])
    assert code == 0
    assert seen["names"] == ["fid50k_full", "kid50k_full"]
    options = seen["options"]
    images = options.generator.generate(jnp.zeros((2, G.z_dim)), jnp.zeros((2, 0)))
    assert images.shape == (2, 16, 16, 3)
    real = np.concatenate(list(options.real.batches(xflip=False)))
    assert real.shape == (5, 16, 16, 3) and real.dtype == np.uint8  # resized to the generator's resolution
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["metric"] for r in records] == ["fid50k_full", "kid50k_full"]
    assert records[0]["results"] == {"fid50k_full": 1.5} and records[0]["network"] == network


def test_weights_and_multi_process_flags_reach_the_run(network_and_data, tmp_path, monkeypatch):
    _, network, data = network_and_data
    vgg16, lpips = tmp_path / "vgg16.npz", weight_files.packaged_file(*LPIPS_PACKAGE)
    np.savez(vgg16, **_random_tensors())
    seen = {}
    monkeypatch.setattr(evaluate, "initialize_runtime", lambda *args: seen.update(runtime=args))
    monkeypatch.setattr(stylegan_jax.eval, "run_metrics", lambda names, options: seen.update(options=options) or [
        dict(metric=n, results={n: 0.5}, total_time=0.1) for n in names])
    code = evaluate.main(["--metrics=pr50k3_full,ppl2_wend", f"--network={network}", f"--data={data}",
                          f"--vgg16={vgg16}", f"--lpips={lpips}", "--coordinator_address=10.0.0.1:1234",
                          "--num_processes=2", "--process_id=1", f"--out={tmp_path / 'm.jsonl'}"])
    assert code == 0
    assert seen["runtime"] == ("10.0.0.1:1234", 2, 1)
    assert (seen["options"].vgg16_weights, seen["options"].lpips_weights) == (str(vgg16), str(lpips))


@pytest.mark.parametrize("argv, message", [
    (["--metrics=fid50k_full"], "either --workdir"),
    (["--metrics=ppl2_wend", "--network={network}", "--data={data}", "--lpips={data}/lpips.ckpt"],
     "lpips.ckpt' does not exist"),
    (["--metrics=ppl2_wend", "--network={network}", "--data={data}", "--lpips={data}/0.png"],
     "0.png is not a pickle of LPIPS parameters"),
    (["--metrics=pr50k3_full", "--network={network}", "--data={data}", "--vgg16={data}/vgg16.npz"],
     "vgg16.npz' does not exist"),
    (["--metrics=fid50k_full", "--network={network}"], "needs --data"),
    (["--metrics=nope", "--network={network}", "--data={data}"], "unknown metric"),
    (["--metrics=fid50k_full", "--network={data}/missing.pkl", "--data={data}"], "no such file"),
])
def test_bad_input_is_a_one_line_error(network_and_data, argv, message, capsys, tmp_path):
    _, network, data = network_and_data
    argv = [a.format(network=network, data=data) for a in argv] + [f"--out={tmp_path / 'm.jsonl'}"]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
