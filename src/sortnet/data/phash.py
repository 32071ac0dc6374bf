"""Perceptual hashes (64-bit DCT pHash) and near-duplicate clustering by Hamming distance.

Usage:
    from sortnet.data.phash import phash, near_duplicate_pairs, clusters
    h = phash(pil_image)                                   # python int in [0, 2**64)
    pairs = near_duplicate_pairs(np.array(hashes, np.uint64))   # int64 [P, 3]: i, j (i < j), bits
    groups = clusters(len(hashes), pairs)                          # component id per item

Threshold: two images are near-duplicates when their pHashes differ in at most NEAR_DUP_BITS = 6 of
64 bits. At that distance, re-encoded, resized, slightly cropped or recompressed copies of one photo
match (when their mean colours are also within COLOUR_TOLERANCE), while different photos of the same scene usually differ by 10+ bits. The search is exact for
distances <= 7 (pigeonhole on 8 one-byte blocks), so the threshold may be set anywhere in 0..7.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

NEAR_DUP_BITS = 6  # max differing bits (of 64) for a near-duplicate; see the module docstring
HASH_SIDE = 32  # px: image side the DCT runs on (standard pHash)
LOW_FREQ = 8  # 8 x 8 lowest frequencies -> 64 bits
FLAT_STD = 2.0  # grey std (0..255) below which an image is "flat" (no structure) and gets no pHash
COLOUR_TOLERANCE = 48  # max sum over R, G, B of |mean difference| (0..255 each) for a near-duplicate
BLOCK_ROWS = 2048  # rows of a bucket compared at once (bounds the [rows, bucket] distance matrix)


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix [n, n]: D @ x is the DCT of column vector x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


_DCT = _dct_matrix(HASH_SIDE)


def image_signature(img: Image.Image) -> tuple[int | None, tuple[int, int, int]]:
    """(pHash, or None for a flat image with no structure to hash; mean RGB 0..255 of the image).

    Flat images (grey std < FLAT_STD) all hash alike, so they are left out of near-duplicate search;
    the mean colour separates same-structure images of different colours (see COLOUR_TOLERANCE).
    """
    # reducing_gap: a fast box pre-reduction for large photos, then bilinear (about 1 ms for 640x480)
    small = img.convert("RGB").resize((HASH_SIDE, HASH_SIDE), Image.BILINEAR, reducing_gap=2.0)
    rgb = tuple(int(round(v)) for v in np.asarray(small, dtype=np.float64).reshape(-1, 3).mean(0))
    grey = np.asarray(small.convert("L"), dtype=np.float64)
    return (None if grey.std() < FLAT_STD else phash_array(grey)), rgb


def phash(img: Image.Image) -> int:
    """64-bit perceptual hash: bits = (8x8 low DCT coefficients of the 32x32 grey image) > their median."""
    grey = img.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.BILINEAR, reducing_gap=2.0)
    return phash_array(np.asarray(grey, dtype=np.float64))


def phash_array(a: np.ndarray) -> int:
    """pHash of a float [32, 32] grey image."""
    coeffs = (_DCT @ a @ _DCT.T)[:LOW_FREQ, :LOW_FREQ].ravel()
    bits = coeffs > np.median(coeffs[1:])  # the DC term (overall brightness) does not set the median
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return int(bin((int(a) ^ int(b)) & 0xFFFFFFFFFFFFFFFF).count("1"))


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def _bucket_pairs(members: np.ndarray, hashes: np.ndarray, max_bits: int) -> np.ndarray:
    """[P, 2] pairs (a < b) within `members` (item indices) whose hashes differ in <= max_bits bits."""
    h = hashes[members]
    found = []
    for start in range(0, len(members), BLOCK_ROWS):
        rows = h[start:start + BLOCK_ROWS]
        dist = _popcount(rows[:, None] ^ h[None, :])  # [rows, bucket] bit distances
        ri, ci = np.nonzero(dist <= max_bits)
        a, b = members[ri + start], members[ci]
        keep = a < b
        found.append(np.stack([a[keep], b[keep]], 1))
    return np.concatenate(found) if found else np.zeros((0, 2), np.int64)


def near_duplicate_pairs(hashes: np.ndarray, max_bits: int = NEAR_DUP_BITS) -> np.ndarray:
    """int64 [P, 3] rows (i, j, bits), i < j, hamming(hashes[i], hashes[j]) <= max_bits (exact for <= 7).

    Pigeonhole: two 64-bit hashes within 7 bits agree on at least one of their 8 bytes, so only items
    sharing a byte value at some position are compared (about N^2 / 32 comparisons instead of N^2 / 2).
    """
    if not 0 <= max_bits <= 7:
        raise ValueError(f"max_bits must be in 0..7 for the byte-block search, got {max_bits}")
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    found = [np.zeros((0, 2), np.int64)]
    as_bytes = hashes.view(np.uint8).reshape(-1, 8)
    for pos in range(8):
        col = as_bytes[:, pos]
        order = np.argsort(col, kind="stable")
        bounds = np.flatnonzero(np.diff(col[order])) + 1
        found += [_bucket_pairs(m, hashes, max_bits) for m in np.split(order, bounds) if len(m) > 1]
    codes = np.unique(np.concatenate(found).astype(np.int64) @ np.array([n, 1], np.int64))  # dedupe (a, b)
    a, b = codes // max(n, 1), codes % max(n, 1)
    return np.stack([a, b, _popcount(hashes[a] ^ hashes[b]).astype(np.int64)], 1)


def clusters(n: int, pairs) -> np.ndarray:
    """Connected-component id of each of n items, given linked (a, b) pairs (any extra columns ignored)."""
    if len(pairs) == 0:  # every item alone; spares the scipy import (~0.5 s) on the way to training
        return np.arange(n, dtype=np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, np.asarray(pairs).shape[-1] if len(pairs) else 2)
    if n == 0:
        return np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)
