"""Helpers shared by the Item Chest notebooks. The papers' algorithms live in the notebooks."""

from .data import (DATASETS, CorruptDatasetError, DatasetUnavailableError, ImageDataset, TensorBatches,
                   binarize, data_dir, embedded_mnist, load_images)
from .metrics import (bernoulli_log_likelihood, bits_per_dim_to_nats, diagonal_gaussian_log_density,
                      importance_weighted_bound, log_mean_exp, nats_to_bits_per_dim,
                      standard_normal_log_density)
from .plotting import (image_grid, plot_history, save_animation, show_animation, show_images,
                       show_interpolation, smooth)
from .profiles import PROFILES, UnknownProfileError, active_profile, pick_config
from .runtime import describe_device, output_dir, pick_device, seed_everything
from .training import (CheckpointMismatchError, History, NonFiniteLossError, checkpoint_dir, fit,
                       load_checkpoint, save_checkpoint)

__version__ = "0.1.0"
