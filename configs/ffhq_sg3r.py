"""StyleGAN3-R on FFHQ 1024x1024 with the official hyper-parameters, doubled widths and the D-input blur."""
import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location("ffhq", pathlib.Path(__file__).with_name("ffhq.py"))
_ffhq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ffhq)


def get_config():
    return _ffhq.get_config("stylegan3-r")
