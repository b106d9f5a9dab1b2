# Sphinx configuration of the astro_delens documentation.
#
# Build with (warnings are errors):
#
#     sphinx-build -W -b html docs docs/_build/html
#
# The build needs no network access: intersphinx is off unless the environment
# variable ASTRO_DELENS_DOCS_INTERSPHINX=1 is set (then the astropy, numpy, ...
# inventories of sphinx-astropy are fetched from the web).

import datetime
import importlib.util
import os
import sys

try:
    from sphinx_astropy.conf.v2 import *  # noqa: F401,F403
except ImportError:
    print("ERROR: the documentation requires the sphinx-astropy package "
          "(pip install -e '.[docs]')")
    sys.exit(1)

import astro_delens

# -- Project information -------------------------------------------------------
project = "astro_delens"
author = "The astro_delens developers"
copyright = f"{datetime.date.today().year}, {author}"

# The full version, including alpha/beta/rc tags, and the short X.Y version.
release = astro_delens.__version__
version = ".".join(release.split(".")[:2])

# -- General configuration -------------------------------------------------------
# Keep only the extensions sphinx-astropy lists that are installed (sphinx-copybutton
# is optional), and make sure that `.. plot::` works.
extensions = [  # noqa: F405 (defined by sphinx_astropy.conf.v2)
    ext for ext in extensions  # noqa: F405
    if importlib.util.find_spec(ext.split(".")[0]) is not None
]
for _ext in ("matplotlib.sphinxext.plot_directive",):
    if _ext not in extensions:
        extensions.append(_ext)

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]

# Substitutions and links available in every page.
rst_epilog += """
.. _lenstronomy: https://lenstronomy.readthedocs.io
.. _GalSim: https://galsim-developers.github.io/GalSim
"""  # noqa: F405

# -- Cross-references to other projects ------------------------------------------------
# Offline by default: no inventory is fetched, so the build never waits for (or fails
# on) the network. References to numpy/astropy/... objects then render as plain text.
if os.environ.get("ASTRO_DELENS_DOCS_INTERSPHINX", "") == "1":
    intersphinx_mapping.update({  # noqa: F405
        "galsim": ("https://galsim-developers.github.io/GalSim/_build/html/", None),
        "lenstronomy": ("https://lenstronomy.readthedocs.io/en/latest/", None),
    })
else:
    intersphinx_mapping = {}

# Unresolved cross-references to other projects are not errors (they are plain text
# when intersphinx is off); everything else is checked by -W.
nitpicky = False

# -- automodapi / numpydoc ---------------------------------------------------------
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
numpydoc_show_class_members = False

# -- matplotlib plot directive ---------------------------------------------------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.dpi": 100, "savefig.bbox": "tight"}

# -- HTML output ---------------------------------------------------------------------
html_title = f"{project} v{release}"
htmlhelp_basename = project + "doc"
html_theme_options = dict(html_theme_options)  # noqa: F405
html_theme_options.update({
    "use_edit_page_button": False,
    "icon_links": [],
})
# _static holds the picture of simulated lenses shown on the front page and in the
# README (made by plots/simulation_gallery.py).
html_static_path = ["_static"]

# -- Links to the classes of the package's top level -------------------------------------
# ``astro_delens.LensParameterEstimator`` and ``astro_delens.SourceReconstructor`` are
# documented where they are defined (astro_delens.estimator, astro_delens.reconstructor);
# references to the top-level names (and their methods) are resolved to those pages.
_TOP_LEVEL_ALIASES = {
    "astro_delens.LensParameterEstimator": "astro_delens.estimator.LensParameterEstimator",
    "astro_delens.SourceReconstructor": "astro_delens.reconstructor.SourceReconstructor",
}


def _resolve_top_level_alias(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    for alias, real in _TOP_LEVEL_ALIASES.items():
        if target == alias or target.startswith(alias + "."):
            return env.get_domain("py").resolve_xref(
                env, node["refdoc"], app.builder, node.get("reftype", "obj"),
                real + target[len(alias):], node, contnode)
    return None


def setup(app):
    app.connect("missing-reference", _resolve_top_level_alias)
