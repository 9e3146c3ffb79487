"""Sampling from trained generators: images, style mixing, interpolation videos, projection, directions, export.

    from stylegan_jax import sampling
    G, variables = sampling.load_generator("network-snapshot.pkl")
    images = sampling.generate_images(G, variables, sampling.parse_range("0-7"), truncation_psi=0.7)
"""
from stylegan_jax.images import grid_shape, save_seed_images
from stylegan_jax.sampling.directions import move_ws, sefa, style_layers
from stylegan_jax.sampling.export_file import export_generator, export_state_dict, load_exported
from stylegan_jax.sampling.interpolation import interpolation_grid, keyframe_path, lerp, slerp, video_frames
from stylegan_jax.sampling.latents import class_labels, seeds_to_z
from stylegan_jax.sampling.loading import GeneratorLoadError, load_generator
from stylegan_jax.sampling.parsing import parse_grid, parse_range, parse_seeds, parse_vec2
from stylegan_jax.sampling.projection import Projection, ProjectionOptions, load_target, project
from stylegan_jax.sampling.render import compute_ws, generate_images, input_transform, iter_images
from stylegan_jax.sampling.style_mixing import StyleMix, mix_ws, parse_styles, style_mixing, style_ranges
from stylegan_jax.sampling.video_io import write_video

__all__ = [
    "move_ws", "sefa", "style_layers", "export_generator", "export_state_dict", "load_exported", "grid_shape",
    "load_target", "save_seed_images", "interpolation_grid", "keyframe_path", "lerp", "slerp",
    "video_frames", "class_labels", "seeds_to_z", "GeneratorLoadError", "load_generator", "parse_grid",
    "parse_range", "parse_seeds", "parse_vec2", "Projection", "ProjectionOptions", "project", "compute_ws",
    "generate_images", "input_transform", "iter_images", "StyleMix", "mix_ws", "parse_styles",
    "style_mixing", "style_ranges", "write_video",
]
