"""What the Python counterparts of the C++ benchmarks share (bench_timm_augment.py,
bench_torchvision_pipeline.py): the image folder they read, less the files the corpus lists as broken."""
import os
import sys

from torchvision import datasets

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_folder(prog, root, exclude, transform):
    """torchvision's ImageFolder of `root` (PIL loader) without the files listed in `exclude` (paths relative
    to root, one a line; "" = none); exits with code 2 and a message naming `prog` when root is not a folder
    of class folders with images."""
    if not os.path.isdir(root):
        print(f"{prog}: {root}: no such directory", file=sys.stderr)
        sys.exit(2)
    excluded = set()
    if exclude:
        with open(exclude) as f:
            excluded = {os.path.normpath(os.path.join(root, l.strip())) for l in f if l.strip()}

    def valid(path):
        return path.lower().endswith(EXTENSIONS) and os.path.normpath(path) not in excluded

    try:
        return datasets.ImageFolder(root, transform=transform, is_valid_file=valid)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"{prog}: {root}: {e}", file=sys.stderr)
        sys.exit(2)
