"""compare_ssgan: self-supervised GAN benchmarking on TensorFlow 2 / Keras 3."""
import setuptools

setuptools.setup(
    name="compare_ssgan",
    version="0.1.0",
    description="Self-supervised GANs (SS-GAN, LT-GAN) and baselines, trained from gin files "
    "under tf.distribute.",
    packages=setuptools.find_packages(include=["compare_ssgan", "compare_ssgan.*"]),
    # The offline CIFAR-10 feature network (benchmarks/results/cifar10_classifier/README.md).
    package_data={"compare_ssgan.eval": ["weights/*.weights.h5"]},
    python_requires=">=3.10",
    # TF 2.21 ships Keras 3; the numbers in benchmarks/results were produced with these versions.
    install_requires=[
        "tensorflow==2.21.*",
        "tensorboard>=2.20,<3",  # TF 2.21 no longer pulls it in; tf.summary needs it
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9.9,<5",
        "gin-config==0.5.0",
        "absl-py>=2.1,<3",
        "numpy>=1.26,<3",
        "scipy>=1.15,<2",  # stats.bootstrap(rng=...) (benchmarks/seed_stats.py)
        "jsonschema>=4.18,<5",  # the result record schema (compare_ssgan/results.py)
        "pillow>=10",
        "matplotlib>=3.8,<4",
        "scikit-learn>=1.5,<2",  # the linear probes' logistic regression (compare_ssgan/eval/probes.py)
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.6,<4"],  # -n 2: the suite is mostly one-threaded Python
        "ray": ["ray>=2.40,<3"],  # the sweep harness's cluster executor
    },
)
