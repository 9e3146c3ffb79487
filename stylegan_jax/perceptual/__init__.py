"""Frozen, pretrained image networks and their weight files: the 2015 Inception-v3 of FID/KID/IS, VGG16, and
LPIPS (VGG16 + linear calibration), the projector's distance and PPL's.

They sit below sampling and eval so that both may use them: `sampling/projection.py` takes LPIPS,
`eval/feature_nets.py` applies Inception and VGG16 batched and sharded.
"""
