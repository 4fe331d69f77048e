"""eilab's Hydra launcher plugin: ``hydra/launcher=packed`` (see eilab.packing)."""
