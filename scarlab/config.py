"""Stage configurations: typed dataclasses, one documented field each; ``None`` means "the data set's default".

Declared once, used everywhere: the command line's options and ``--config`` files are generated from these
(:mod:`scarlab.schema`), the stage notebooks' parameters cells hold the same fields, and each stage saves its
resolved configuration in its run directory (``config.json``), so a run always says exactly what it did.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import ScarlabError

SEED_MAX = 2**32 - 1
"""the largest seed: NumPy's seeding (np.random.seed, default_rng) takes 0..2**32 − 1 and no negative seed."""


def bounded(default=None, *, low=None, high=None, above=None, factory=None):
    """A field whose value (each value, for a list) must lie in [low, high] and exceed ``above`` (None = unbounded);
    the command line, config files and the pipeline refuse any other before anything runs
    (:func:`scarlab.schema.check_bounds`)."""
    meta = {"bounds": (low, high, above)}
    return field(default_factory=factory, metadata=meta) if factory else field(default=default, metadata=meta)


SEED = {"low": 0, "high": SEED_MAX}
SURROGATE_SIZE = 2000
"""how many images a generated surrogate (noise, sample photos) has unless told otherwise."""


@dataclass
class DataOptions:
    """Which data set a stage reads, and where it lives (declared once for every stage and the pipeline)."""

    dataset: str = "digits"
    """scarlab dataset name: digits, cifar10, cifar100, tinyimagenet or imagefolder:PATH."""
    data_root: str | None = None
    """where torchvision / Tiny-ImageNet data live (downloads go there); None = ~/.cache/scarlab/data."""


@dataclass
class ModelOptions(DataOptions):
    """A data set and the model trained on it."""

    model: str | None = None
    """registered model name (scarlab.models.MODELS)."""


@dataclass
class TrainConfig(ModelOptions):
    """Train the *original* model (no forget options) or the *retrained oracle* (forget data removed)."""

    role: str = "original"
    """'original' trains on all training data; 'retrained' trains on the retain set only."""
    scenario: str = "CR"
    """retrained only: CR (forget whole classes) or HR (forget random samples)."""
    forget_classes: list[int] = field(default_factory=list)
    """retrained, CR: the forgotten class indices."""
    forget_size: int | None = None
    """retrained, HR: how many random training samples are forgotten."""
    split: str | None = None
    """retrained: a split.npz (or a run directory holding one) to reuse instead of making a new split."""
    seed: int = bounded(0, **SEED)
    """seeds weights, shuffling, augmentation and (HR) the forget sample."""
    recipe: str = "lab"
    """training recipe for 32-px images and larger (see RECIPES): 'lab' (the default: 'fast' for 18 epochs with
    bfloat16 autocast where the device has bfloat16 kernels; on cifar10-mini 0.33x classic's stage time at 1.3 points
    more test accuracy, BENCHMARKS §5), 'fast' (12 epochs, float32) or 'classic' (30 epochs: the default before
    2026-12-05 and the recipe of BENCHMARKS' blocks labelled so); options given explicitly override the recipe's.
    Digits has one recipe."""
    epochs: int | None = None
    """training epochs (None: the recipe's)."""
    batch_size: int | None = None
    """mini-batch size (None: the recipe's)."""
    lr: float | None = None
    """peak learning rate (Adam on digits, SGD otherwise; None: the recipe's)."""
    optimizer: str | None = None
    """'sgd' (momentum 0.9, Nesterov) or 'adam' (None: the recipe's)."""
    weight_decay: float = bounded(5e-4, low=0)
    """L2 penalty."""
    augment: bool = True
    """random crop (and horizontal flip, except digits) on training batches."""
    label_smoothing: float | None = bounded(None, low=0, high=0.9)
    """cross-entropy label smoothing (None: the recipe's)."""
    whiten: bool | None = None
    """initialise the first convolution from the whitening of the training images' patches and keep it fixed
    while training (None: the recipe's)."""
    channels_last: bool | None = None
    """train in the channels-last memory layout (faster convolutions on CPUs; None: the recipe's)."""
    bf16: bool | None = None
    """bfloat16 autocast of the forward pass while training (weights, gradients, optimizer state and the test
    evaluation stay float32). None: the recipe's — on in 'lab' where the device has bfloat16 kernels
    (scarlab.device.native_bf16), off in 'fast' and 'classic'; the run records what it used."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    stats_delta: float = bounded(0.5, above=0)
    """original only: Tukey exponent of the stored per-class feature statistics SCAR uses."""

    def resolved(self, dataset_name: str) -> "TrainConfig":
        """Every recipe option filled: the explicit ones kept, the rest from the recipe (digits: its own)."""
        from .errors import choose
        from .models import default_model
        choose("recipe", self.recipe, RECIPES)
        base = DIGITS_RECIPE if dataset_name == "digits" else RECIPES[self.recipe]
        return dataclasses.replace(self, model=self.model or default_model(dataset_name),
                                   **{k: v if (v := getattr(self, k)) is not None else base[k] for k in base})


RECIPES = {
    "lab": dict(epochs=18, batch_size=256, lr=0.2, optimizer="sgd", label_smoothing=0.2, whiten=True,
                channels_last=True, bf16=None),
    "fast": dict(epochs=12, batch_size=256, lr=0.2, optimizer="sgd", label_smoothing=0.2, whiten=True,
                 channels_last=True, bf16=False),
    "classic": dict(epochs=30, batch_size=128, lr=0.05, optimizer="sgd", label_smoothing=0.0, whiten=False,
                    channels_last=False, bf16=False),
}
"""The training recipes of 32-px and larger images, compared by time to test accuracy on cifar10-mini
(`bench/bench_recipe.py`, BENCHMARKS §5). All: Nesterov SGD, one-cycle schedule (15 % warm-up), weight decay 5e-4,
random crop + flip. ``bf16=None`` (lab): bfloat16 autocast where the training device has bfloat16 kernels, else
float32 (decided when the run starts, recorded in its config.json)."""
DIGITS_RECIPE = dict(epochs=12, batch_size=64, lr=0.003, optimizer="adam", label_smoothing=0.0, whiten=False,
                     channels_last=False, bf16=False)
"""8-px digits: a few seconds of training; the stage's start-up, not training, is what costs there."""
RECIPE_KEYS = ("recipe", "epochs", "batch_size", "lr", "optimizer", "weight_decay", "augment", "label_smoothing",
               "whiten", "channels_last", "bf16")
"""The training options: the recipe's name and what it resolves to. The resolved values (all but ``recipe``, a name
for a set of defaults) make a training run what it is: a retrained oracle and every shadow model copy them from the
original they stand for."""
LEGACY_RECIPE = {"label_smoothing": 0.0, "whiten": False, "channels_last": False, "bf16": False}
"""How a run recorded before these options existed (2026-12-05) was trained."""


@dataclass
class UnlearnConfig:
    """Unlearn a trained original model with one registered method."""

    original: str = ""
    """run directory of the original model (holds its checkpoint and class statistics)."""
    method: str = "scar"
    """registered unlearning method (scarlab.unlearn.METHODS)."""
    retrained: str | None = None
    """optional run directory of the retrained oracle (recorded as a parent for evaluation)."""
    split: str | None = None
    """split.npz or a run directory holding one (e.g. the retrained run); None = make one from the options below."""
    scenario: str = "CR"
    """CR or HR (when no split is given)."""
    forget_classes: list[int] = field(default_factory=list)
    """CR forget classes (when no split is given)."""
    forget_size: int | None = None
    """HR forget size (when no split is given)."""
    seed: int = bounded(0, **SEED)
    """seeds the method's randomness (and a new HR split)."""
    surrogate: str = "auto"
    """out-of-distribution images: imagefolder:PATH, gaussian_noise, sample_images, sample_edges or auto."""
    surrogate_chunks: int | None = None
    """imagefolder surrogates: use only the first k chunk folders; None = all."""
    surrogate_size: int = bounded(SURROGATE_SIZE, low=1)
    """generated surrogates (noise, sample photos): how many images."""
    params: dict = field(default_factory=dict)
    """method hyper-parameters by name (see each method's Params dataclass); unknown names are an error."""
    snapshot_every: int = bounded(5, low=1)
    """save a feature snapshot every k optimiser steps (plus the first and the last)."""
    probe_forget: int = bounded(500, low=0)
    """forget-train points in each snapshot (and forget-test points, CR)."""
    probe_retain: int = bounded(1000, low=0)
    """retain-test points (HR: test points) in each snapshot."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    retain_available: bool = True
    """whether the retain set may be read during unlearning; False refuses, before any run directory is created,
    every method that needs it (finetune, duck, scrub, ...) and leaves those that do not (scar, scar_self, ...)."""


@dataclass
class SplitConfig(DataOptions):
    """Make a forget/retain split once, for every later stage to reuse."""

    scenario: str = "CR"
    """CR (forget whole classes) or HR (forget random samples)."""
    forget_classes: list[int] = field(default_factory=list)
    """CR: the forgotten class indices (0 3, or 0,3)."""
    forget_size: int | None = None
    """HR: how many random training images are forgotten."""
    seed: int = bounded(0, **SEED)
    """HR: seeds the random forget sample."""


@dataclass
class EvaluateConfig:
    """Evaluate runs: accuracies, membership-inference attacks, privacy score and AUS (metrics.json)."""

    runs: list[str] = field(default_factory=list)
    """run directories to evaluate (unlearn or retrained runs in place; one original run with --out)."""
    original: str | None = None
    """the original run (None = each run's manifest parent); its test accuracy is AUS's a_or."""
    retrained: str | None = None
    """the retrained oracle, for the privacy score (None = the manifest parent)."""
    split: str | None = None
    """split.npz or a run directory holding one (None = the run's own)."""
    out: str | None = None
    """evaluate an original model against the split into this new run directory (one run only)."""
    overwrite: bool = False
    """replace an existing out directory."""
    summary: str | None = None
    """also write summary.csv, summary_agg.csv and summary.md of the evaluated runs into this folder."""
    device: str = "cpu"
    """auto, cpu, cuda, cuda:N or mps."""
    mia_repeats: int = bounded(5, low=1)
    """repetitions of the paper's SVC attack (each on freshly drawn sets)."""
    quiet: bool = False
    """no progress bars."""


@dataclass
class EmbedConfig:
    """UMAP coordinates of runs' feature snapshots (embedding.parquet), for the dashboard's migration view."""

    runs: list[str] = field(default_factory=list)
    """run directories (unlearn, retrained or original)."""
    original: str | None = None
    """original run whose reducer places every snapshot (None = the one in each run's manifest)."""
    force: bool = False
    """refit the reducers and rewrite existing embeddings."""
    device: str = "cpu"
    """device for feature extraction: auto, cpu, cuda, cuda:N or mps."""
    quiet: bool = False
    """no progress bars."""


@dataclass
class StatsConfig:
    """(Re)compute an original run's per-class feature statistics (stats.npz), which SCAR can start from."""

    run: str = ""
    """run directory of the original model."""
    delta: float = bounded(0.5, above=0)
    """Tukey exponent of the feature transform."""
    signed: bool = False
    """sign-preserving Tukey transform, for backbones whose features can be negative."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""


@dataclass
class ImportConfig(ModelOptions):
    """Make an *original* run from a trained checkpoint (yours, torchvision's ResNet, or another scarlab run's)."""

    source: str = ""
    """the checkpoint file: a scarlab checkpoints/model.pt, a state dict of a registered model (name it with
    --model), or of torchvision's ResNet-18/34/50 with its own key names; loaded with weights_only=True."""
    stats_delta: float = bounded(0.5, above=0)
    """Tukey exponent of the stored per-class feature statistics SCAR uses."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""


@dataclass
class OrganizeConfig:
    """Copy every image under src, shuffled, into numbered chunk folders dst/0, dst/1, ... (imagefolder:dst)."""

    src: str = ""
    """folder holding images (any depth), e.g. 10,000 sampled ImageNet or COCO images."""
    dst: str = ""
    """the surrogate folder to create."""
    chunk_size: int = 1000
    """images per chunk folder."""
    seed: int = 0
    """seeds the shuffle."""
    overwrite: bool = False
    """replace an existing dst."""


MIN_SHADOWS = 3
"""the fewest shadow models per population: the held-out U-LiRA attack fits on K − 1 pairs, and one std needs two."""


def shadow_seeds(seed: int, k: int) -> list[int]:
    """The K shadow seeds seed, seed + 1, ..., each a valid seed (0..SEED_MAX)."""
    if not 0 <= seed <= seed + k - 1 <= SEED_MAX:
        raise ScarlabError(f"the shadow seeds {seed}..{seed + k - 1} must lie from 0 to {SEED_MAX}; choose another "
                           "shadow seed")
    return [int(seed) + i for i in range(k)]


@dataclass
class AuditConfig:
    """Per-example privacy audit (U-LiRA) of runs against shadow models: audit.json, audit.parquet in each run."""

    runs: list[str] = field(default_factory=list)
    """run directories to audit: unlearn runs, retrained runs, or an original evaluated against a split
    (scarlab evaluate ORIG --split S --out DIR)."""
    shadows: int = 8
    """K, the shadow models per population (at least 3; 6 for a retrained run, whose K are split in halves)."""
    seed: int = bounded(1000, **SEED)
    """first shadow seed: shadow i trains (and unlearns) with seed + i; must not include the audited model's seed."""
    shadow_dir: str | None = None
    """folder of the shadow population; None = next to the run: <run>/../shadows__<fingerprint8>."""
    delta: float = 1e-5
    """δ of the per-example (ε, δ) estimate."""
    alpha: float = 0.05
    """every interval has level 1 − alpha (t intervals on the shadow pairs, Clopper–Pearson rates)."""
    device: str = "auto"
    """device for training, unlearning and scoring the shadows: auto, cpu, cuda, cuda:N or mps."""
    jobs: int = 1
    """worker processes making shadow members at once on the CPU (torch's threads shared out among them)."""
    mode: str = "online"
    """online: U-LiRA over K unlearned and K retrained shadows (K unlearnings per method and variant); offline:
    offline LiRA and RMIA of the audited model against the K retrained shadows alone (shared by every run of the
    split: no training once they exist); auto: online when the run's online shadows exist, else offline."""
    rmia_a: float | None = bounded(None, low=0, high=1)
    """offline RMIA's a in [0, 1] (Pr_IN ≈ a·Pr_OUT + 1 − a); None = chosen by the paper's grid search on the
    split's original model."""
    population: int = bounded(1000, low=1)
    """offline RMIA's population sample z: this many test images, seeded (all of them, when fewer)."""
    quiet: bool = False
    """no progress bars."""


@dataclass
class RunOptions:
    """Where a stage writes, for the commands that create one run directory."""

    out: str = ""
    """run directory to create."""
    overwrite: bool = False
    """replace an existing run directory (only a complete or failed scarlab run)."""
    quiet: bool = False
    """no progress bars."""
