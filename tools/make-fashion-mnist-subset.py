#!/usr/bin/env python3
"""Makes the Fashion-MNIST subset that `widevalley demo` falls back to when the full set is not installed.

The subset is class-balanced and chosen without randomness: the first 1,000 training images of each class and the
first 200 test images of each class, in the official file order (index order), kept in that order. That is 10,000
training and 2,000 test images, written as gzip-compressed IDX files with the official file names, so the IDX reader
that reads the full set reads the subset unchanged.

Usage (re-runnable; the output is byte-identical on every run with the same zlib):
    python3 tools/make-fashion-mnist-subset.py [SOURCE_DIR] [OUTPUT_DIR]
SOURCE_DIR defaults to /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist package), OUTPUT_DIR to
src/WideValley.Cli/DemoData/fashion-mnist-subset. It prints the MD5 of each file's uncompressed IDX bytes; those are
what src/WideValley.Cli/DemoData/FashionMnistSubset.cs records and checks at load (the uncompressed bytes, because
another zlib may compress the same bytes differently).

Fashion-MNIST is Copyright (c) 2017 Zalando SE and distributed under the MIT licence; see NOTICE.txt in the output folder.
"""
import gzip
import hashlib
import os
import struct
import sys

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
CLASSES = 10


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return shape, data[4 + 4 * ndim:]


def first_per_class(labels, per_class):
    """Indices of the first `per_class` samples of each class, in file order."""
    taken = [0] * CLASSES
    chosen = []
    for index, label in enumerate(labels):
        if taken[label] < per_class:
            taken[label] += 1
            chosen.append(index)
    if taken != [per_class] * CLASSES:
        sys.exit(f"the source has fewer than {per_class} samples of some class: {taken}")
    return chosen


def write_idx(path, shape, payload):
    header = struct.pack(">HBB", 0, 0x08, len(shape)) + struct.pack(">" + "I" * len(shape), *shape)
    content = header + payload
    temp = path + ".part"
    # mtime=0 and no file name in the gzip header: the same input always gives the same bytes.
    with open(temp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as f:
        f.write(content)
    os.replace(temp, path)
    return hashlib.md5(content).hexdigest()


def subset(source, output, prefix, per_class):
    image_shape, images = read_idx(os.path.join(source, f"{prefix}-images-idx3-ubyte.gz"))
    label_shape, labels = read_idx(os.path.join(source, f"{prefix}-labels-idx1-ubyte.gz"))
    if image_shape[0] != label_shape[0] or image_shape[1:] != (28, 28):
        sys.exit(f"{prefix}: unexpected shapes {image_shape} and {label_shape}")
    chosen = first_per_class(labels, per_class)
    size = 28 * 28
    image_bytes = b"".join(images[i * size:(i + 1) * size] for i in chosen)
    label_bytes = bytes(labels[i] for i in chosen)
    n = len(chosen)
    for name, shape, payload in ((f"{prefix}-images-idx3-ubyte.gz", (n, 28, 28), image_bytes),
                                 (f"{prefix}-labels-idx1-ubyte.gz", (n,), label_bytes)):
        md5 = write_idx(os.path.join(output, name), shape, payload)
        print(f"{md5}  {name} (uncompressed IDX, {n} of {image_shape[0]} samples)")


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    here = os.path.dirname(os.path.abspath(__file__))
    output = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "src", "WideValley.Cli", "DemoData", "fashion-mnist-subset")
    os.makedirs(output, exist_ok=True)
    subset(source, output, "train", TRAIN_PER_CLASS)
    subset(source, output, "t10k", TEST_PER_CLASS)


if __name__ == "__main__":
    main()
