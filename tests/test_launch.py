"""launch/: the Cloud TPU launcher's gcloud commands (dry run) and the SLURM recipe's process start-up."""
import os
import pathlib
import shlex
import stat
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TPU_VM = ROOT / "launch" / "tpu_vm.py"
SLURM = ROOT / "launch" / "slurm_gpu.sbatch"
COMMON = ["--name=sg2-ffhq", "--zone=us-central2-b", "--accelerator-type=v4-32", "--project=my-proj"]


def _dry_run(*args):
    out = subprocess.run([sys.executable, str(TPU_VM), "--dry-run", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [shlex.split(line) for line in out.stdout.splitlines()]


def test_up_on_a_v4_32_slice_prints_the_exact_gcloud_commands():
    cmds = _dry_run("up", *COMMON, "--spot", "--config=configs/ffhq.py", "--workdir=gs://bucket/runs/ffhq",
                    "--", "--config.dataset.path=gs://bucket/ffhq", "--config.batch_size=64")
    where = ["--zone=us-central2-b", "--project=my-proj"]
    assert cmds[0] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "sg2-ffhq", *where,
                       "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base", "--spot"]
    assert cmds[1][:5] == ["git", "-C", ".", "archive", "--format=tar.gz"] and cmds[1][-1] == "HEAD"
    assert cmds[2] == ["gcloud", "compute", "tpus", "tpu-vm", "scp", "stylegan_jax_src.tar.gz",
                       "sg2-ffhq:~/stylegan_jax_src.tar.gz", *where, "--worker=all"]
    ssh = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "sg2-ffhq", *where, "--worker=all"]
    assert cmds[3][:-1] == ssh
    install = cmds[3][-1]
    assert install.startswith("--command=") and "pip install -q -e ~/stylegan_jax 'jax[tpu]==0.10.2'" in install
    assert cmds[4][:-1] == ssh
    train = cmds[4][-1]
    assert train == ("--command=cd ~/stylegan_jax && setsid nohup python3 -m stylegan_jax.main "
                     "--config=configs/ffhq.py --workdir=gs://bucket/runs/ffhq "
                     "--config.dataset.path=gs://bucket/ffhq --config.batch_size=64 "
                     "> ~/stylegan_jax_train.log 2>&1 < /dev/null &")
    assert len(cmds) == 5


def test_queued_resource_logs_and_delete():
    cmds = _dry_run("create", *COMMON, "--queued", "--spot", "--create-flag=--reserved")
    assert cmds == [["gcloud", "compute", "tpus", "queued-resources", "create", "sg2-ffhq", "--node-id=sg2-ffhq",
                     "--zone=us-central2-b", "--project=my-proj", "--accelerator-type=v4-32",
                     "--runtime-version=tpu-ubuntu2204-base", "--spot", "--reserved"]]
    up = _dry_run("up", *COMMON, "--queued", "--workdir=gs://b/r")
    assert up[1][:2] == ["bash", "-c"] and "ACTIVE" in up[1][2] and "queued-resources describe sg2-ffhq" in up[1][2]
    assert _dry_run("logs", *COMMON) == [["gcloud", "compute", "tpus", "tpu-vm", "ssh", "sg2-ffhq",
                                          "--zone=us-central2-b", "--project=my-proj", "--worker=0",
                                          "--command=tail -n 200 -f ~/stylegan_jax_train.log"]]
    assert _dry_run("delete", *COMMON, "--queued") == [
        ["gcloud", "compute", "tpus", "queued-resources", "delete", "sg2-ffhq", "--zone=us-central2-b",
         "--project=my-proj", "--force", "--quiet"]]
    assert _dry_run("delete", *COMMON, "--gcloud=/opt/gcloud") == [
        ["/opt/gcloud", "compute", "tpus", "tpu-vm", "delete", "sg2-ffhq", "--zone=us-central2-b",
         "--project=my-proj", "--quiet"]]


def test_training_without_a_workdir_is_refused():
    out = subprocess.run([sys.executable, str(TPU_VM), "train", *COMMON, "--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--workdir is required" in out.stderr


def test_a_failing_command_stops_the_launcher(tmp_path):
    fake = tmp_path / "gcloud"
    fake.write_text("#!/bin/sh\necho \"gcloud $*\" >> \"$(dirname \"$0\")/calls\"\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = subprocess.run([sys.executable, str(TPU_VM), "up", *COMMON, "--workdir=gs://b/r", f"--gcloud={fake}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and "command failed with exit code 3" in out.stderr
    assert (tmp_path / "calls").read_text().count("\n") == 1  # create failed: nothing else ran


def test_slurm_recipe_starts_main_with_the_coordinator_and_process_ids(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "scontrol": "#!/bin/sh\nprintf 'gpu-node-07\\ngpu-node-08\\n'\n",
        # Runs the task once per process, as srun does on each node.
        "srun": "#!/bin/bash\nshift\nfor id in 0 1; do SLURM_PROCID=$id SLURM_NTASKS=2 \"$@\"; done\n",
        "fake_python": "#!/bin/sh\necho \"$@\"\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu-node-[07-08]",
           "PYTHON": str(bin_dir / "fake_python")}
    out = subprocess.run(["bash", str(SLURM), "configs/ffhq.py", "/shared/run", "--config.batch_size=64"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == [
        f"-m stylegan_jax.main --config=configs/ffhq.py --workdir=/shared/run "
        f"--coordinator_address=gpu-node-07:12355 --num_processes=2 --process_id={i} --config.batch_size=64"
        for i in (0, 1)]


def test_slurm_recipe_needs_config_and_workdir():
    out = subprocess.run(["bash", str(SLURM)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "usage:" in out.stderr
