"""The `dg` defs folder: each module here holds one `Definitions` object (or `@dg.definitions` function), and
`wavefin_assets.definitions` merges them with `dg.load_from_defs_folder`.

The asset code itself stays in `wavefin_assets.assets`; these modules only gather and wire it. Nothing here
imports torch, diffusers, statsmodels, arch, sklearn or mlflow: loading the code location stays fast.
"""
