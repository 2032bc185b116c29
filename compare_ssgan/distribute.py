"""A tf.distribute strategy from a name: default | mirrored | multi_worker | tpu."""
import os

import gin
import tensorflow as tf

from compare_ssgan.errors import UserError

NAMES = ("default", "mirrored", "multi_worker", "tpu")


@gin.configurable("strategy")
def make_strategy(name="default", logical_cpus=None, tpu_address=""):
    """Creates the strategy; call before any other TensorFlow work.

    `logical_cpus` splits the host CPU into that many logical devices, so `mirrored` can run
    (and be tested) with several replicas on a machine without accelerators.
    """
    if name not in NAMES:
        raise UserError(f"unknown strategy {name!r}; valid names: {', '.join(NAMES)} (set strategy.name in gin)")
    if logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * int(logical_cpus))
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("strategy.name='multi_worker' needs the TF_CONFIG environment variable "
                            "describing the cluster and this worker's task (see tf.distribute docs)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def worker_info(strategy):
    """(task name, is_chief) of this process; chief-only work (logs, samples) checks it."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        resolver = strategy.cluster_resolver
        has_chief = "chief" in resolver.cluster_spec().as_dict()
        index = int(resolver.task_id)
        is_chief = resolver.task_type == "chief" or (
            resolver.task_type == "worker" and index == 0 and not has_chief)
        return f"{resolver.task_type}{index}", is_chief
    return "chief", True
