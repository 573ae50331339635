"""scarlab: an interactive lab for machine unlearning of image classifiers, built around SCAR (ECCV 2024)."""

__version__ = "0.1.0"
