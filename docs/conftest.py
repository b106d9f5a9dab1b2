# Keep pytest (doctest-rst / doctest-plus) away from the Sphinx configuration, the
# plot scripts and the files Sphinx generates; only the hand-written *.rst pages
# are tested.
collect_ignore = ["conf.py"]
collect_ignore_glob = ["_build/*", "api/*", "plots/*"]
