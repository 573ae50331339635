"""Pure metric functions: numpy arrays in, floats / numpy arrays / flat dicts out (the metrics of the SCAR paper)."""
from .accuracy import accuracy, confusion_matrix, per_class_accuracy, split_accuracies
from .aus import aus_cr, aus_from_metrics, aus_hr, aus_with_uncertainty, mean_std
from .mia import (attack_chance, cheap_mia, mia_loss_lr, mia_svc, paper_mia_draw, paper_mia_sets, per_sample_loss,
                  privacy_score)

__all__ = [
    "accuracy", "confusion_matrix", "per_class_accuracy", "split_accuracies",
    "aus_cr", "aus_hr", "aus_from_metrics", "mean_std", "aus_with_uncertainty",
    "mia_svc", "paper_mia_sets", "paper_mia_draw", "attack_chance", "mia_loss_lr", "cheap_mia", "privacy_score",
    "per_sample_loss",
]
