"""Hydra launcher plugin of the harness: hydra-submitit-launcher's SLURM launcher, made safe for long multiruns."""
