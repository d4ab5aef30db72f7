"""The config layer: what a user may write, checked before anything is built.

Owns the typed schema (`schema`), the config groups as frozen dataclasses (`groups`), the rules between groups
(`rules`, `gpu`), trl's GRPOConfig field table (`trainer_fields`), the registries of the two compared axes
(`registry`, with the torch-free declarations of the advantage estimators in `estimators` and of the
importance-sampling levels in `levels`), the metric catalogue (`metrics`), option lookup
on Hydra's search path (`options`), composition of a command line's jobs (`compose`) and the generated tables
(`tables`).

May import: nothing else of harness. Never imports torch, trl or transformers: `--cfg job` and every refusal of a bad
value stay fast, and the math a registry entry names is imported only when training starts.
"""
