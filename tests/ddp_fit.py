"""Run by tests/test_distributed.py under torchrun: one `sortnet.fit` per rank, then this rank's parameters
(safetensors) and the number of images it trained on (JSON) go to OUT/rank<r>.*

Usage:
    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_fit.py DATA OUT SETTINGS_JSON
"""
import json
import sys
from pathlib import Path

from safetensors.torch import save_file

import sortnet
from sortnet.training import distributed


class CountImages(sortnet.Callback):
    def __init__(self):
        self.images = 0

    def on_batch_end(self, batch, logs=None):
        self.images += logs["size"]


class StopAfter(sortnet.Callback):
    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.epochs:
            self.trainer.stop_training = True


data, out, settings = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
stop_after, run_dir = settings.pop("stop_after", None), settings.pop("run_dir", None)
counter = CountImages()
callbacks = [counter] + ([StopAfter(stop_after)] if stop_after else [])
bundle = sortnet.prepare(data, progress=False, check=False, seed=settings.get("seed", 0))
clf = sortnet.fit(bundle, out=run_dir, callbacks=callbacks, progress=False, **settings)
r = distributed.rank()
save_file({k: v.contiguous() for k, v in clf.model.state_dict().items()}, str(out / f"rank{r}.safetensors"))
(out / f"rank{r}.json").write_text(json.dumps({"images": counter.images, "world": distributed.world_size()}))
