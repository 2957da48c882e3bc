"""The streaming core: every feature that asks the model runs its request as a job."""
