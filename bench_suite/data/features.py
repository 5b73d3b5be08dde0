"""From decoded uint8 images to the engine's float features: standardization and seeded subsets."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def standardized_features(
    images: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None = None, chunk: int = 2048
) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray]]:
    """uint8 (N, H, W, C) images -> float32 (N, C*H*W) features in CHW order (torchvision's
    tensor layout), ``(x / 255 - mean_c) / std_c``, and the ``(mean, std)`` used.

    ``stats`` None: the per-channel mean/std of these images (the training set), taken from
    column sums accumulated while converting (float32 per chunk, float64 across chunks), so
    the data is read once. Pass the training stats to standardize a test set. The features
    are written chunk by chunk into one preallocated tensor: the peak is the uint8 input plus
    the float32 output.
    """
    n, height, width, channels = images.shape
    pixels = height * width
    out = torch.empty(n, channels * pixels, dtype=torch.float32)
    col_sum = torch.zeros(channels * pixels, dtype=torch.float64)
    col_sq = torch.zeros(channels * pixels, dtype=torch.float64)
    # per-channel uint8 range: a constant channel is detected exactly (E[x^2] - mean^2 of a
    # constant is a rounding residue, not 0, and dividing by its root would amplify noise)
    low = torch.full((channels,), 255, dtype=torch.uint8)
    high = torch.zeros(channels, dtype=torch.uint8)
    for s in range(0, n, chunk):
        block = torch.from_numpy(np.ascontiguousarray(images[s : s + chunk])).permute(0, 3, 1, 2)
        dest = out[s : s + chunk]
        torch.mul(block.reshape(-1, channels * pixels), 1.0 / 255.0, out=dest)
        if stats is None:
            col_sum += dest.sum(0)
            col_sq += (dest * dest).sum(0)
            low = torch.minimum(low, block.amin(dim=(0, 2, 3)))
            high = torch.maximum(high, block.amax(dim=(0, 2, 3)))
    if stats is None:
        count = max(n * pixels, 1)
        mean = (col_sum.view(channels, pixels).sum(1) / count).numpy()
        var = (col_sq.view(channels, pixels).sum(1) / count).numpy() - mean**2
        std = np.sqrt(np.maximum(var, 0.0))
        constant = (low >= high).numpy()  # also true for no images at all
        mean = np.where(constant, low.numpy() / 255.0, mean)
        stats = (mean, np.where(constant | (std <= 0), 1.0, std))  # a constant channel is only centered
    mean_t = torch.from_numpy(np.asarray(stats[0])).float().view(1, channels, 1)
    std_t = torch.from_numpy(np.asarray(stats[1])).float().view(1, channels, 1)
    out.view(n, channels, pixels).sub_(mean_t).div_(std_t)
    return out, stats


def seeded_subset(total: int, size: int | None, generator: torch.Generator) -> np.ndarray:
    """Indices of ``size`` of ``total`` items: the first ``size`` of a seeded permutation,
    sorted back into data-set order (all of them, in order, when ``size`` is None)."""
    perm = torch.randperm(total, generator=generator)
    if size is None or size == total:
        return np.arange(total)
    return np.sort(perm[:size].numpy())


def labeled_image_data(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *,
    classes: list[str], n_train: int | None, n_test: int | None, data_seed: int, source: str, checksum: str | None,
    info: dict | None = None,
):
    """A classification task's data with the images' TRUE labels: seeded subsets (the first
    ``n_train`` / ``n_test`` of permutations drawn from ``data_seed``, train then test, kept in
    data-set order; None = all), features standardized with the subset's training statistics.

    Returns :class:`bench_suite.tasks.base.TaskData` (x float32 (n, C*H*W), y int64 (n,)) whose
    ``info`` holds the sizes, class names, class counts per split and the standardization stats.
    """
    from .contract import TaskData

    generator = torch.Generator().manual_seed(data_seed)
    train_idx = seeded_subset(len(y_train), n_train, generator)
    test_idx = seeded_subset(len(y_test), n_test, generator)
    x_train_u8 = x_train if len(train_idx) == len(y_train) else x_train[train_idx]
    x_test_u8 = x_test if len(test_idx) == len(y_test) else x_test[test_idx]
    features_train, (mean, std) = standardized_features(x_train_u8)
    features_test, _ = standardized_features(x_test_u8, (mean, std))
    labels_train = torch.from_numpy(np.ascontiguousarray(y_train[train_idx], dtype=np.int64))
    labels_test = torch.from_numpy(np.ascontiguousarray(y_test[test_idx], dtype=np.int64))
    k = len(classes)
    return TaskData(
        x_train=features_train, y_train=labels_train, num_outputs=k, classification=True, source=source,
        x_test=features_test, y_test=labels_test, checksum=checksum,
        info={
            "n_train": len(train_idx),
            "n_test": len(test_idx),
            "classes": list(classes),
            "class_counts_train": np.bincount(labels_train.numpy(), minlength=k).tolist(),
            "class_counts_test": np.bincount(labels_test.numpy(), minlength=k).tolist(),
            "channel_mean": np.asarray(mean).tolist(),
            "channel_std": np.asarray(std).tolist(),
            **(info or {}),
        },
    )


def subset_image_data(images: Any, options: dict[str, Any], *, data_seed: int, y_train: np.ndarray | None = None,
                      y_test: np.ndarray | None = None, classes: list[str] | None = None,
                      info: dict | None = None):
    """:func:`labeled_image_data` of a reader's images (``x_train``, ``y_train``, ``x_test``,
    ``y_test``, ``classes``, ``source``, ``checksum``, ``location``, ``from_cache``) with the
    task's subset options ``n_train`` / ``n_test``; ``y_train`` / ``y_test`` / ``classes``
    replace the reader's labels (e.g. CIFAR-100's coarse ones), ``info`` adds to the record's."""
    from .subsets import check_subset_size

    y_train = images.y_train if y_train is None else y_train
    y_test = images.y_test if y_test is None else y_test
    return labeled_image_data(
        images.x_train, y_train, images.x_test, y_test, classes=images.classes if classes is None else classes,
        n_train=check_subset_size("n_train", options.get("n_train"), len(y_train)),
        n_test=check_subset_size("n_test", options.get("n_test"), len(y_test)),
        data_seed=data_seed, source=images.source, checksum=images.checksum,
        info={**(info or {}), "location": images.location, "from_cache": images.from_cache},
    )
