"""Training of StyleGAN2/3: losses, sharded steps, loop and checkpoints."""
