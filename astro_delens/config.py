"""Settings of astro_delens, through `astropy.config`.

Change them for a session with ``conf.set_temp`` or for good in
``~/.astropy/config/astro_delens.cfg`` (`astropy.config.generate_config`
writes a commented template).

Examples
--------
>>> from astro_delens.config import conf
>>> conf.default_model
'sky'
>>> with conf.set_temp("default_model", "survey"):
...     conf.default_model
'survey'
>>> conf.symmetries, conf.estimator_batch_size, conf.progress
(8, 256, 'auto')
"""

from astropy import config as _config

__all__ = ["Conf", "conf"]


class Conf(_config.ConfigNamespace):
    """The settings of astro_delens (`astropy.config.ConfigNamespace`)."""

    default_model = _config.ConfigItem(
        "sky",
        "Model family or model directory used when none is given: by "
        "LensParameterEstimator, SourceReconstructor, astro_delens.parallel and the "
        "astro-delens command.")
    partition_size = _config.ConfigItem(
        256, "Inputs per Dask partition of astro_delens.parallel and astro-delens "
             "predict --workers/--scheduler.")
    symmetries = _config.ConfigItem(
        8, "Turns and flips of each image whose network answers are averaged (8, 4 or 1), "
           "when none is given.")
    estimator_batch_size = _config.ConfigItem(
        256, "Images per network call of LensParameterEstimator, when none is given.")
    reconstructor_batch_size = _config.ConfigItem(
        64, "Images per network call of SourceReconstructor, when none is given.")
    progress = _config.ConfigItem(
        "auto", "Progress bars of predict_many, reconstruct_many and the commands: 'auto' "
                "(only when standard error is a terminal), 'always' or 'never'.",
        cfgtype="option('auto', 'always', 'never')")


conf = Conf()
