"""Helpers shared by the Item Chest notebooks. The papers' algorithms live in the notebooks."""

from .data import (DATASETS, UNPAIRED_DATASETS, CorruptDatasetError, DatasetUnavailableError, ImageDataset,
                   TensorBatches, UnpairedImageFolders, binarize, data_dir, embedded_mnist, load_images,
                   load_unpaired_folders)
from .classifiers import (AttributeClassifier, ReferenceClassifier, attribute_accuracy, classify, classify_attributes,
                          mnist_classifier, shapes_classifier, train_attribute_classifier, train_reference_classifier)
from .metrics import (ModeCoverage, average_bound, average_importance_weighted_bound, bernoulli_log_likelihood,
                      bits_per_dim_to_nats, diagonal_gaussian_log_density, frechet_distance,
                      frechet_distance_gaussians, importance_weighted_bound, log_mean_exp,
                      mode_coverage, nats_to_bits_per_dim, nearest_neighbours, parzen_log_likelihood,
                      select_parzen_sigma, ssim, standard_normal_log_density)
from .plotting import (image_grid, plot_history, save_animation, show_animation, show_images,
                       show_interpolation, smooth)
from .profiles import PROFILES, Config, UnknownProfileError, active_profile, pick_config
from .results import (RESULTS_MIME, load_results, markdown_table, read_result, record_results, results_dir,
                      show_table)
from .runtime import describe_device, output_dir, pick_device, seed_everything
from .distributed import BatchNotSplittable, is_distributed, is_main_process, rank, shard_batch, world_size
from .scenes import (RoomScenes, RoomsDataset, look_at, render_views, ring_viewpoints, room_scene, rooms_dataset,
                     sample_free_viewpoints, sample_ring_viewpoints, sample_rooms, viewpoint_pose, viewpoint_vector)
from .shapes import ATTRIBUTE_VALUES, ShapeAttributes, render_shapes, sample_shape_attributes, shapes_dataset
from .translation import (PairedTest, UnpairedBatches, UnpairedDomains, attribute_index, background_images,
                          paired_test_set, per_image_mse, translate, translation_scores, unpaired_domains)
from .unet import UNet, sinusoidal_embedding
from .training import (CheckpointMismatchError, History, NonFiniteLossError, TrainingInterrupted, checkpoint_dir,
                       code_fingerprint, fit, load_checkpoint, load_trained, run_checkpoint, save_checkpoint)

__version__ = "0.1.0"
