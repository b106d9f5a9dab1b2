"""Training speed: seconds per training step of a shipped network, on this Keras backend.

Usage::

    KERAS_BACKEND=jax python benchmarks/training_speed.py --data train.h5 [--model seed]
    KERAS_BACKEND=jax python benchmarks/training_speed.py --data train.h5 --batch-size 128
    python benchmarks/training_speed.py            # TensorFlow; simulates 640 seed lenses

Trains the estimator of a shipped family (its architecture and training
set-up, warm-started from its weights) for two epochs on the first
``--samples`` lenses of ``--data`` with ``astro_delens.training.train_model``,
exactly as ``astro-delens train`` does (HDF5 streaming, augmentation, batches
of ``--batch-size``; validation on 100 of the same lenses, as this only times),
and prints the wall-clock seconds per step of the second epoch, which no longer
pays for compilation. Without ``--data`` a training file of the family's preset
is simulated first (not timed). The backend is the one Keras selects
(``KERAS_BACKEND``); run the script once per backend to compare them.
"""

import argparse
import csv
import math
import tempfile
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="training HDF5 file (default: simulate one)")
    parser.add_argument("--model", default="seed", help="shipped family (default seed)")
    parser.add_argument("--samples", type=int, default=640,
                        help="training lenses per epoch (default 640: 20 steps)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="lenses per training step (default 32)")
    args = parser.parse_args(argv)

    import keras

    from astro_delens.nn.registry import read_config, resolve_model_dir
    from astro_delens.training.dataset import generate_dataset
    from astro_delens.training.train import train_model

    init = resolve_model_dir(args.model, "estimator")
    preset = read_config(init)["preset"]["name"]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "train.h5"
            generate_dataset(data, preset, args.samples, "train", seed=0)
        run = Path(tmp) / "run"
        training = train_model("estimator", data, data, run, epochs=2,
                               batch_size=args.batch_size, max_samples=args.samples,
                               max_val_samples=100, init=init,
                               calibrate=False, verbose=0, log=lambda msg: None)["training"]
        with open(run / "history.csv") as f:
            last_epoch = list(csv.DictReader(f))[-1]
    steps = math.ceil(training["n_train"] / training["batch_size"])
    seconds = float(last_epoch["time_s"]) / steps
    print(f"backend {keras.backend.backend()}: {seconds:.3f} s per step of "
          f"{training['batch_size']} ({args.model} estimator, {steps} steps, validation included)")


if __name__ == "__main__":
    main()
