"""Writes the TensorBoard reference events for unimiss-ssl's tests/it/tensorboard.rs with
tensorboardX 2.6.5 (the writer PyTorch users know): three scalars, one image, one text."""
import sys
import numpy as np
from tensorboardX import SummaryWriter

out = sys.argv[1]
w = SummaryWriter(logdir=out, flush_secs=1)
w.add_scalar("2d/loss", 6.25, global_step=1)
w.add_scalar("2d/terms/dino", 0.125, global_step=2)
w.add_scalar("train/lr", 2e-3, global_step=40)
img = np.zeros((3, 4, 3), dtype=np.uint8)  # HWC, a 4x3 RGB gradient
for y in range(3):
    for x in range(4):
        img[y, x] = (60 * x, 100 * y, 7)
w.add_image("preview", img, global_step=0, dataformats="HWC")
w.add_text("config", "seed = 0\n[optim]\nepochs = 2", global_step=0)
w.close()
