"""The estimator at large batch on an accelerator: cutouts per second, with and without preparation.

Usage::

    KERAS_BACKEND=jax python benchmarks/gpu_throughput.py [-n 4096] [--batch-size 1024]
        [--model sky] [--symmetries 8] [--no-field-check]

``n`` arrays of the ``survey`` preset (simulated once, then repeated) are run
through

* the network alone (`astro_delens.nn.registry.LoadedEstimator.predict` on
  prepared cutouts, with the symmetry average), and
* `LensParameterEstimator.predict_many` from arrays to a table, preparation
  included (on the CPU: photutils, reproject),

at ``--batch-size`` images per network call, on whatever device Keras' backend
(``KERAS_BACKEND``: tensorflow, the default, jax or torch) puts it. The device
is printed first: without a GPU the script runs on the CPU and says so.
"""

import argparse
import os
import time
import warnings


def device_description():
    """The device Keras' backend computes on, in words."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = jax.devices()
        kinds = {d.platform for d in devices}
        return f"jax on {', '.join(str(d.device_kind) for d in devices)}", "gpu" in kinds
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"torch on {torch.cuda.get_device_name(0)}", True
        return "torch on the CPU", False
    import tensorflow as tf  # a benchmark may ask TensorFlow where it runs

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return f"tensorflow on {len(gpus)} GPU(s)", True
    return "tensorflow on the CPU", False


def main(argv=None):
    from astro_delens.nn.registry import DEFAULT_FAMILY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--model", default=DEFAULT_FAMILY)
    parser.add_argument("--symmetries", type=int, default=8, choices=(1, 4, 8))
    parser.add_argument("--no-field-check", action="store_true")
    parser.add_argument("--distinct", type=int, default=64,
                        help="distinct simulated lenses, repeated up to n (default 64)")
    args = parser.parse_args(argv)

    from astro_delens import LensParameterEstimator
    from astro_delens.training.simulate import LensSimulator

    warnings.simplefilter("ignore")
    device, on_gpu = device_description()
    print(f"device: {device}" + ("" if on_gpu else " (no GPU here: CPU figures)"))
    print(f"{os.cpu_count()} CPU cores; {args.n} cutouts, batch {args.batch_size}, "
          f"{args.symmetries} symmetries, field check {'off' if args.no_field_check else 'on'}")
    sim = LensSimulator("survey")
    samples = [sim.simulate(seed) for seed in range(min(args.distinct, args.n))]
    items = [(s["image"], {"pixel_scale": 0.1, "noise": s["noise_map"]}) for s in samples]
    items = (items * (args.n // len(items) + 1))[:args.n]
    est = LensParameterEstimator(args.model, batch_size=args.batch_size,
                                 symmetries=args.symmetries,
                                 field_check=not args.no_field_check)
    prepared = [est.prepare(data, **kw) for data, kw in items[:len(samples)]]
    prepared = (prepared * (args.n // len(prepared) + 1))[:args.n]
    est.predict_prepared(prepared[:args.batch_size])  # compile for the full batch shape
    t0 = time.perf_counter()
    est.predict_prepared(prepared)
    network = args.n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    est.predict_many(items)
    end_to_end = args.n / (time.perf_counter() - t0)
    print(f"network alone (prepared cutouts to estimates): {network:9.1f} cutouts/s")
    print(f"arrays to table (preparation included):        {end_to_end:9.1f} cutouts/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
