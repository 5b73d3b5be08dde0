"""restricted_imagenet: 9 ImageNet super-classes (Tsipras et al., 2019) as small flattened squares."""

from __future__ import annotations

from typing import Any

from .base import Task, TaskData, register_task

COMPARED_METHODS = ["mli_paired_pgd", "sgd"]
RESTRICTED_IMAGENET_WNIDS = 203  # the ImageNet classes in the 9 super-classes


@register_task
class RestrictedImageNet(Task):
    """Restricted ImageNet with its true labels: generalization of mli_paired_pgd vs sgd.

    Train images from ILSVRC-2012 ``train/``, test images from ``val/``, of the 203 classes in
    the 9 super-classes dog, cat, frog, turtle, bird, primate, fish, crab, insect (inclusive
    class-index ranges over the sorted wnid list). Each image is center-cropped to a square,
    resized to ``image_size`` (box filter), scaled to [0, 1], standardized per channel with the
    training images' statistics and flattened (d = 3 * image_size^2, CHW order).
    ``max_train_per_wnid`` / ``max_val_per_wnid`` keep the first k images of every wnid folder
    (sorted file names) for tractability. See docs/data.md for the class counts.
    """

    name = "restricted_imagenet"
    version = 1
    description = "Restricted ImageNet, 9 super-classes, 32x32 flattened (d=3072): test accuracy vs width"
    classification = True
    options: dict[str, Any] = {
        "image_size": 32,
        "max_train_per_wnid": None,  # None = all (~1,300 per wnid, ~264k in all)
        "max_val_per_wnid": None,  # None = all 50 per wnid (10,150 in all)
    }
    train_defaults: dict[str, Any] = {
        "epochs": 100,
        "batch_size": 128,
        "lr_w": 0.01,
        "lr_v": 0.01,
        "momentum": 0.9,
        "loss": "ce",
        "eps": 1.0,
        "eps_mode": "relative",
        "eval_every": 5,
    }
    grid: dict[str, list] = {
        "methods": COMPARED_METHODS,
        "widths": [64, 128, 256, 1024, 4096],
        "activations": ["relu"],
    }
    profiles: dict[str, dict[str, Any]] = {
        "smoke": {
            "description": "5 train / 2 val images per wnid (1,015 / 406), 3 epochs, width 64; "
                           "skipped without ImageNet",
            "device": "cpu",
            "seeds": 1,
            "methods": COMPARED_METHODS,
            "widths": [64],
            "activations": ["relu"],
            "options": {"max_train_per_wnid": 5, "max_val_per_wnid": 2},
            "train": {"epochs": 3, "eval_every": 3},
        },
        "ci": {
            "description": "50 train / 10 val images per wnid (10,150 / 2,030), 20 epochs, width 256; "
                           "skipped without ImageNet",
            "device": "cpu",
            "seeds": 1,
            "methods": COMPARED_METHODS,
            "widths": [256],
            "activations": ["relu"],
            "options": {"max_train_per_wnid": 50, "max_val_per_wnid": 10},
            "train": {"epochs": 20, "eval_every": 5},
        },
        "paper": {
            "description": "all images of the 203 classes, widths 64-4096, relu, 100 epochs, "
                           "mli_paired_pgd vs sgd (our choice: the paper publishes no such grid)",
            "device": "cuda",
            "seeds": 3,
            "methods": COMPARED_METHODS,
            "widths": [64, 128, 256, 1024, 4096],
            "activations": ["relu"],
        },
    }
    defaults_rationale = (
        "Our choice (the paper publishes no Restricted-ImageNet settings): the same optimizer as "
        "cifar10_random (SGD, momentum 0.9, lr 0.01, batch 128, cross-entropy, eps 1.0 relative to "
        "||W0||_F) so the two tasks differ only in data; 100 epochs, since with true labels test "
        "accuracy settles long before memorization; widths 64 and 128 are the narrow end (below "
        "2n/d ~ 172 for n ~ 264k, d = 3072), 256-4096 go up to the widest CIFAR width. "
        "See docs/data.md."
    )

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        out = super().check_options(options)
        size = out.get("image_size")
        if size is None or size < 1:
            raise ValueError(f"option image_size must be an integer >= 1, got {size!r}")
        for key in ("max_train_per_wnid", "max_val_per_wnid"):
            value = out.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"option {key} must be None (all) or an integer >= 1, got {value!r}")
        return out

    @classmethod
    def shape(cls, options: dict[str, Any]) -> dict[str, Any]:
        """An estimate (folders may hold fewer images than the caps): about 1,300 train and 50
        val images per wnid."""
        size = options.get("image_size") or 32
        per_train, per_val = options.get("max_train_per_wnid"), options.get("max_val_per_wnid")
        return {"n": RESTRICTED_IMAGENET_WNIDS * (per_train or 1300), "d": 3 * size * size, "k": 9,
                "n_test": RESTRICTED_IMAGENET_WNIDS * (per_val or 50), "exact": False}

    def load(self, options, *, data_seed, data_root=None, cache_dir=None) -> TaskData:
        # imported here: listing the tasks must not need torch or Pillow
        import numpy as np
        import torch

        from ..data.features import standardized_features
        from ..data.imagenet import load_restricted_imagenet

        images = load_restricted_imagenet(
            data_root, cache_dir,
            image_size=options.get("image_size", 32),
            max_train_per_wnid=options.get("max_train_per_wnid"),
            max_val_per_wnid=options.get("max_val_per_wnid"),
        )
        x_train, (mean, std) = standardized_features(images.x_train)
        x_test, _ = standardized_features(images.x_test, (mean, std))
        return TaskData(
            x_train=x_train,
            y_train=torch.from_numpy(np.ascontiguousarray(images.y_train)),
            num_outputs=len(images.classes),
            classification=True,
            source=images.source,
            x_test=x_test,
            y_test=torch.from_numpy(np.ascontiguousarray(images.y_test)),
            checksum=images.checksum,
            info={
                **images.info,
                "classes": images.classes,
                "n_train": int(images.y_train.shape[0]),
                "n_test": int(images.y_test.shape[0]),
                "channel_mean": mean.tolist(),
                "channel_std": std.tolist(),
                "location": images.location,
                "from_cache": images.from_cache,
            },
        )
