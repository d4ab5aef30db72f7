"""harness: GSPO-token and its baselines on TRL, composed by Hydra, tracked in wandb, swept with Optuna."""

__version__ = "0.1.0"
