"""Signal-processing ops of StyleGAN2/3 as pure JAX functions on NHWC images."""
from stylegan_jax.ops.bias_act import ACTIVATIONS, bias_act
from stylegan_jax.ops.conv2d_resample import conv2d_resample
from stylegan_jax.ops.filter_design import design_lowpass_filter
from stylegan_jax.ops.filtered_lrelu import filtered_lrelu
from stylegan_jax.ops.filters import setup_filter
from stylegan_jax.ops.modulated_conv2d import modulated_conv2d
from stylegan_jax.ops.modulated_conv2d_sg3 import modulated_conv2d as modulated_conv2d_sg3
from stylegan_jax.ops.normalization import minibatch_std, normalize_2nd_moment
from stylegan_jax.ops.upfirdn2d import downsample2d, filter2d, upfirdn2d, upsample2d
