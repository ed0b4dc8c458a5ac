"""wavefin_assets: the Dagster layer. Thin: config, storage, tracking and metadata around `wavefin_core`."""
