#!/usr/bin/env python3
"""Runs stylegan_jax training on a Cloud TPU VM or pod slice through gcloud.

    python launch/tpu_vm.py up --name=sg2 --zone=us-central2-b --accelerator-type=v4-32 \
        --config=configs/ffhq.py --workdir=gs://BUCKET/runs/ffhq -- --config.dataset.path=gs://BUCKET/ffhq

Actions: create, setup (copy this checkout to every worker and install it), train (start the run
on every worker at once), logs (follow worker 0's log), ssh (run --command on every worker),
status, delete, and up (create + setup + train). Every gcloud command is printed before it runs;
--dry-run prints them without running anything. --gcloud picks the gcloud binary and
--create-flag / --ssh-flag append raw flags to the commands they name.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from typing import Sequence

ARCHIVE = "stylegan_jax_src.tar.gz"
REMOTE_DIR = "~/stylegan_jax"
REMOTE_LOG = "~/stylegan_jax_train.log"
ACTIONS = ("create", "setup", "train", "logs", "ssh", "status", "delete", "up")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parses the launcher's command line; arguments after '--' go to stylegan_jax.main."""
    argv = list(argv)
    train_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("--name", required=True, help="TPU VM (and queued resource) name")
    p.add_argument("--zone", required=True)
    p.add_argument("--project", default=None, help="GCP project (default: gcloud's configured one)")
    p.add_argument("--accelerator-type", default="v4-8", help="e.g. v4-8, v4-32, v5litepod-16")
    p.add_argument("--runtime-version", default="tpu-ubuntu2204-base")
    capacity = p.add_mutually_exclusive_group()
    capacity.add_argument("--spot", action="store_true", help="spot capacity (preemptible; the run resumes)")
    capacity.add_argument("--preemptible", action="store_true", help="legacy preemptible capacity")
    p.add_argument("--queued", action="store_true", help="request the slice as a queued resource")
    p.add_argument("--config", default="configs/ffhq.py", help="config file, relative to the checkout")
    p.add_argument("--workdir", default=None, help="run folder, normally gs://BUCKET/PATH (required to train)")
    p.add_argument("--jax-version", default="0.10.2", help="jax[tpu] version installed on the workers")
    p.add_argument("--source", default=".", help="the stylegan_jax checkout to copy to the workers")
    p.add_argument("--command", default=None, help="shell command for the 'ssh' action")
    p.add_argument("--gcloud", default="gcloud", help="gcloud binary (or a wrapper)")
    p.add_argument("--create-flag", action="append", default=[], help="extra flag for the create command")
    p.add_argument("--ssh-flag", action="append", default=[], help="extra flag for every ssh/scp command")
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    args = p.parse_args(argv)
    args.train_args = train_args
    if args.action in ("train", "up") and not args.workdir:
        p.error("--workdir is required to train (use gs://BUCKET/PATH so every worker shares it)")
    if args.action == "ssh" and not args.command:
        p.error("the ssh action needs --command")
    return args


class Launcher:
    """Builds the gcloud commands of one TPU VM and runs (or prints) them."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.where = [f"--zone={args.zone}"] + ([f"--project={args.project}"] if args.project else [])

    def _tpu(self, *words: str) -> list[str]:
        return [self.args.gcloud, "compute", "tpus", *words]

    def _on_workers(self, command: str, worker: str = "all") -> list[str]:
        return self._tpu("tpu-vm", "ssh", self.args.name, *self.where, f"--worker={worker}",
                         *self.args.ssh_flag, f"--command={command}")

    def create(self) -> list[list[str]]:
        """The command that creates the VM (or queues the slice)."""
        a = self.args
        capacity = ["--spot"] if a.spot else ["--preemptible"] if a.preemptible else []
        if a.queued:
            cmd = self._tpu("queued-resources", "create", a.name, f"--node-id={a.name}", *self.where,
                            f"--accelerator-type={a.accelerator_type}", f"--runtime-version={a.runtime_version}",
                            *capacity)
        else:
            cmd = self._tpu("tpu-vm", "create", a.name, *self.where, f"--accelerator-type={a.accelerator_type}",
                            f"--version={a.runtime_version}", *capacity)
        return [cmd + a.create_flag]

    def setup(self) -> list[list[str]]:
        """Packs the checkout, copies it to every worker and installs it with jax[tpu]."""
        a = self.args
        pack = ["git", "-C", a.source, "archive", "--format=tar.gz", f"--output={os.path.abspath(ARCHIVE)}", "HEAD"]
        copy = self._tpu("tpu-vm", "scp", ARCHIVE, f"{a.name}:~/{ARCHIVE}", *self.where, "--worker=all",
                         *a.ssh_flag)
        install = (f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} && tar xzf ~/{ARCHIVE} -C {REMOTE_DIR} && "
                   f"python3 -m pip install -q -U pip && "
                   f"python3 -m pip install -q -e {REMOTE_DIR} 'jax[tpu]=={a.jax_version}'")
        return [pack, copy, self._on_workers(install)]

    def train(self) -> list[list[str]]:
        """Starts `python -m stylegan_jax.main` on every worker at once, detached, logging to a file."""
        a = self.args
        main = ["python3", "-m", "stylegan_jax.main", f"--config={a.config}", f"--workdir={a.workdir}",
                *a.train_args]
        command = (f"cd {REMOTE_DIR} && setsid nohup {shlex.join(main)} > {REMOTE_LOG} 2>&1 < /dev/null &")
        return [self._on_workers(command)]

    def logs(self) -> list[list[str]]:
        """Follows the training log of worker 0 (the process that writes logs)."""
        return [self._on_workers(f"tail -n 200 -f {REMOTE_LOG}", worker="0")]

    def ssh(self) -> list[list[str]]:
        """Runs --command on every worker."""
        return [self._on_workers(self.args.command)]

    def status(self) -> list[list[str]]:
        """Describes the VM (or the queued resource)."""
        kind = "queued-resources" if self.args.queued else "tpu-vm"
        return [self._tpu(kind, "describe", self.args.name, *self.where)]

    def delete(self) -> list[list[str]]:
        """Deletes the VM (and its queued resource)."""
        if self.args.queued:
            return [self._tpu("queued-resources", "delete", self.args.name, *self.where, "--force", "--quiet")]
        return [self._tpu("tpu-vm", "delete", self.args.name, *self.where, "--quiet")]

    def wait_until_active(self) -> list[list[str]]:
        """Polls a queued resource until its slice is ACTIVE (nothing to wait for otherwise)."""
        if not self.args.queued:
            return []
        describe = shlex.join(self._tpu("queued-resources", "describe", self.args.name, *self.where,
                                        "--format=value(state.state)"))
        return [["bash", "-c", f"until [ \"$({describe})\" = ACTIVE ]; do sleep 30; done"]]

    def up(self) -> list[list[str]]:
        """create, (wait for a queued slice,) setup and train in one go."""
        return self.create() + self.wait_until_active() + self.setup() + self.train()

    def commands(self) -> list[list[str]]:
        """The commands of the chosen action, in order."""
        return getattr(self, self.args.action)()


def main(argv: Sequence[str] | None = None) -> int:
    """Prints each command of the chosen action and runs it unless --dry-run; stops at the first failure."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for cmd in Launcher(args).commands():
        print(("" if args.dry_run else "+ ") + shlex.join(cmd), flush=True)
        if args.dry_run:
            continue
        code = subprocess.call(cmd)
        if code != 0:
            print(f"command failed with exit code {code}: {shlex.join(cmd)}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
