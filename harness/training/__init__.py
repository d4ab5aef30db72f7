"""One training job: build (model, tokenizer, task, GRPOConfig, trainer) -> train -> statistics -> sinks.

The only layer that touches trl, transformers and accelerate internals (`trainer.HarnessGRPOTrainer` subclasses
trl's GRPOTrainer and stays thin: the math it calls lives in `harness.algorithms`). `job.run_job` is the one entry:
`python -m harness.run` calls it once per Hydra job, a study worker once per trial.

May import: `harness.tasks`, `harness.algorithms`, `harness.runtime`, `harness.config`.
"""
