#!/usr/bin/env python3
"""Makes the tiny .npy files of WideValley's NpyTests with NumPy itself (re-runnable; same bytes every run).

    apt-get install -y python3-numpy        # Debian 12: NumPy 1.24
    /usr/bin/python3 make_npy.py            # run from this folder

Every array holds the same values, a(i, j, k) = 100 i + 10 j + k on shape (2, 3, 4) (or its first row for 1-D
files), so a test can check any element without reading NumPy. The files cover:
  f4_le_v1.npy, f8_be_v1.npy        float32 little-endian, float64 big-endian, format 1.0
  f4_le_v2.npy, i4_le_v3.npy        format 2.0 and 3.0 (np.lib.format.write_array with an explicit version)
  u1_v1.npy, i8_be_v1.npy           uint8, int64 big-endian
  f4_fortran_v1.npy                 the (2, 3, 4) array stored in Fortran (column-major) order
  labels_i8.npy, labels_i4.npy      labels 0..9 repeated to length 24, int64 and int32
  inputs_u1.npy                     24 images (24, 1, 2, 2) uint8
"""
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
i, j, k = np.meshgrid(np.arange(2), np.arange(3), np.arange(4), indexing="ij")
values = 100 * i + 10 * j + k


def write(name, array, version=None):
    with open(os.path.join(here, name), "wb") as f:
        np.lib.format.write_array(f, array, version=version, allow_pickle=False)


write("f4_le_v1.npy", values.astype("<f4"), (1, 0))
write("f8_be_v1.npy", values.astype(">f8"), (1, 0))
write("f4_le_v2.npy", values.astype("<f4"), (2, 0))
write("i4_le_v3.npy", values.astype("<i4"), (3, 0))
write("u1_v1.npy", values.astype("u1"), (1, 0))
write("i8_be_v1.npy", values.astype(">i8"), (1, 0))
write("f4_fortran_v1.npy", np.asfortranarray(values.astype("<f4")), (1, 0))
write("labels_i8.npy", (np.arange(24) % 10).astype("<i8"), (1, 0))
write("labels_i4.npy", (np.arange(24) % 10).astype("<i4"), (1, 0))
write("inputs_u1.npy", (np.arange(24 * 4).reshape(24, 1, 2, 2) % 256).astype("u1"), (1, 0))
print("numpy", np.__version__, "wrote", sorted(f for f in os.listdir(here) if f.endswith(".npy")))
