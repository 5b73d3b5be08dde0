"""The class vocabularies of the supported image data sets, and which one a tree of class folders names.

An image folder ``{train,test}/<class>/*`` carries no name of its data set, so one data root
(or one zip passed to every task of a profile) could be read by the wrong reader. Each reader
therefore asks :func:`identify` which known data set the class folders belong to, and steps
aside (a skip, not an error) when they plainly belong to another one; folders with unknown
names are read and checked as usual.

Sources: CIFAR-10 and CIFAR-100 names as in the official python releases' ``batches.meta`` /
``meta`` (Krizhevsky, 2009; label order = sorted order for CIFAR-100, CIFAR-10's own order,
which is also sorted); the CIFAR-100 superclass table from the same release's description
(https://www.cs.toronto.edu/~kriz/cifar.html); MNIST's classes are the digits 0-9.
"""

from __future__ import annotations

from typing import Iterable

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

MNIST_CLASSES = tuple(str(digit) for digit in range(10))

# coarse (superclass) name -> its five fine classes, as the official description lists them
CIFAR100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
# label order of the official release: both lists are sorted
CIFAR100_COARSE_CLASSES = tuple(sorted(CIFAR100_SUPERCLASSES))
CIFAR100_FINE_CLASSES = tuple(sorted(f for fines in CIFAR100_SUPERCLASSES.values() for f in fines))
CIFAR100_COARSE_OF_FINE = tuple(
    CIFAR100_COARSE_CLASSES.index(next(c for c, fines in CIFAR100_SUPERCLASSES.items() if fine in fines))
    for fine in CIFAR100_FINE_CLASSES
)  # fine label index -> coarse label index

KNOWN_CLASSES: dict[str, frozenset[str]] = {
    "CIFAR-10": frozenset(CIFAR10_CLASSES),
    "CIFAR-100": frozenset(CIFAR100_FINE_CLASSES),
    "MNIST": frozenset(MNIST_CLASSES),
}


def identify(class_folders: Iterable[str]) -> str | None:
    """The known data set whose class names make up most of ``class_folders`` (more than half
    of them), else None (unknown names: the caller reads the tree and checks it as usual)."""
    names = set(class_folders)
    if not names:
        return None
    best, share = None, 0.5
    for dataset, known in KNOWN_CLASSES.items():
        frac = len(names & known) / len(names)
        if frac > share:
            best, share = dataset, frac
    return best


def abridged(names: Iterable[str], limit: int = 4) -> str:
    """``a, b, c, …, z`` for messages (all names when there are few)."""
    names = list(names)
    if len(names) <= limit + 1:
        return ", ".join(names)
    return ", ".join(names[:limit - 1]) + f", …, {names[-1]}"
