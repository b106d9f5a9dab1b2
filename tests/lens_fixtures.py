"""Fixtures shared by several test modules (imported by them: a tests/conftest.py would
clash with docs/conftest.py, both being top-level ``conftest`` modules)."""

import pytest


@pytest.fixture(scope="session")
def survey_lens():
    """A simulated survey lens with lens light and a good signal-to-noise ratio."""
    from astro_delens.training.simulate import LensSimulator

    sim = LensSimulator("survey")
    for seed in range(40):
        sample = sim.simulate(seed)
        meta = sample["meta"]
        if meta["snr"] >= 40 and meta["lens_light_ratio"] >= 0.5 and sample["params"][0] < 2.2:
            return sample
    pytest.fail("no survey lens with S/N >= 40 and lens light among 40 seeds")
