"""Hydra configuration files of eilab (a package so that they install with it)."""
