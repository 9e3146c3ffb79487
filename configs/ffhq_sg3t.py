"""StyleGAN3-T on FFHQ 1024x1024 with the official hyper-parameters (batch 32, gamma 32.8)."""
import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location("ffhq", pathlib.Path(__file__).with_name("ffhq.py"))
_ffhq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ffhq)


def get_config():
    return _ffhq.get_config("stylegan3-t")
