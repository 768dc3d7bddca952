"""Packaging for minitransfer.

The top-level `kernels/` folder ships inside the package as `minitransfer.kernels`, so the library
finds its attention and fused kernels wherever it is installed.
"""
from setuptools import find_packages, setup

MPI_EXTRAS = ["mpi4py==4.1.2", "mpich==5.0.2"]  # mpich's wheel brings libmpi and an mpiexec into the venv's bin/
CUDA_KERNELS = ["numba-cuda==0.30.4"]  # kernels/*_cuda.py; without a GPU the tests run them in its CUDA simulator
TEST_EXTRAS = ["pytest>=8", "torch==2.13.0", "transformers==5.23.0", "matplotlib"] + MPI_EXTRAS + CUDA_KERNELS

setup(
    name="minitransfer",
    version="0.1.0",
    description="A small from-scratch deep-learning framework for transfer learning in NLP (BERT, DistilBERT).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["minitransfer", "minitransfer.*"]) + ["minitransfer.kernels"],
    package_dir={"minitransfer.kernels": "kernels"},
    package_data={"minitransfer": ["data/*", "data/*/*"]},
    install_requires=["numpy>=1.24", "tokenizers>=0.15", "numba>=0.59", "safetensors>=0.4", "tqdm>=4.60"],
    extras_require={
        "gpu": ["cupy-cuda12x"] + CUDA_KERNELS,
        "gpu13": ["cupy-cuda13x"] + CUDA_KERNELS,
        "mpi": MPI_EXTRAS,  # data parallelism: mpiexec -n N minitransfer train ...
        "test": TEST_EXTRAS,
        "bench": TEST_EXTRAS + ["accelerate==1.15.0"],  # transformers' Trainer (benchmarks/train_sst2_transformers.py)
        "plot": ["matplotlib"],
        "graph": ["graphviz"],  # mt.viz.save renders SVG/PNG (with the `dot` program); DOT text needs nothing
    },
    entry_points={"console_scripts": ["minitransfer=minitransfer.cli:main"]},
)
