"""The real side of every comparison: the feature network's activations of a uniform random
subset of a split, computed once and cached on disk.

Cached under datasets.cache_dir()/real_activations/, one .npz per (dataset, source, split,
feature network and its weights, number of samples, and the split's content fingerprint: for
an image folder its file list, sizes and modification times), written to a temporary file and
renamed, so a sweep computes them once and a crash never leaves half a file. The real images
are a uniform random subset of the split drawn with a fixed seed (REAL_SUBSET_SEED), in random
order (KID's blocks and IS's splits assume a random order). Image folders (eval/image_folders.py)
are cached the same way.
"""
import contextlib
import hashlib
import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from compare_ssgan import datasets
from compare_ssgan.errors import UserError

REAL_SUBSET_SEED = 0


def random_subset(batches, num, seed):
    """A uniform random subset of `num` rows of a stream of arrays, in random order, with
    memory O(num + batch): each row gets a seeded uniform key; keep the `num` smallest keys."""
    rng = np.random.default_rng(seed)
    keys, rows, total = np.empty([0]), None, 0
    for batch in batches:
        total += len(batch)
        batch_keys = rng.random(len(batch))
        keys = np.concatenate([keys, batch_keys])
        rows = batch if rows is None else np.concatenate([rows, batch])
        if len(keys) > num:
            keep = np.argpartition(keys, num)[:num]
            keys, rows = keys[keep], rows[keep]
    if rows is None:
        return np.empty([0]), 0
    order = np.argsort(keys, kind="stable")
    return rows[order], total


def _to_uint8(images):
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def real_activations(data, split, network, num_samples):
    """(features, logits) of `num_samples` real images of `split`, cached on disk."""
    key = {"dataset": data.name, "source": data.source_description, "split": split,
           "feature_network": network.info.name, "feature_network_source": network.info.source,
           "num_samples": int(num_samples), "subset": f"uniform random, seed {REAL_SUBSET_SEED}",
           "content": data.content_fingerprint(split), "version": 2}
    key_json = json.dumps(key, sort_keys=True)
    digest = hashlib.sha1(key_json.encode()).hexdigest()[:12]
    directory = datasets.cache_subdir("real_activations")
    path = os.path.join(directory, f"{data.name}-{split}-{network.info.name}-{num_samples}-{digest}.npz")
    if os.path.exists(path):
        try:
            with np.load(path) as cached:
                if str(cached["key"]) == key_json:
                    logging.info("Real activations (%s split, %d images, %s) from cache %s.",
                                 split, num_samples, network.info.name, path)
                    return cached["features"], cached["logits"]
        except (OSError, ValueError, KeyError) as e:
            logging.warning("Ignoring unreadable real-activation cache %s (%s); recomputing.", path, e)
    start = time.time()
    # Kept as uint8 until the network runs (a quarter of the memory of float32; exact for
    # images stored at the dataset's resolution, within half a grey level for resized ones).
    images = (_to_uint8(x.numpy()) for x, _ in data.eval_input(500, split=split))
    try:
        images, total = random_subset(images, num_samples, REAL_SUBSET_SEED)
    except tf.errors.InvalidArgumentError as e:  # e.g. an undecodable image
        data.check_decodable(split, e)
        raise
    if total < num_samples:
        raise UserError(f"the {split!r} split of {data.name} has {total} images, fewer than "
                        f"evaluation.num_samples={num_samples}; lower it or choose another "
                        f"evaluation.real_split")
    outputs = [network(images[i:i + 1000].astype(np.float32) / 127.5 - 1.0)
               for i in range(0, len(images), 1000)]
    features = np.concatenate([f for f, _ in outputs])
    logits = np.concatenate([l for _, l in outputs])
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, features=features, logits=logits, key=np.asarray(key_json))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    logging.info("Real activations (%s split, %d of %d images, %s) computed in %.0fs; cached in %s.",
                 split, num_samples, total, network.info.name, time.time() - start, path)
    return features, logits
