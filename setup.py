from pathlib import Path

from setuptools import find_packages, setup


def version() -> str:
    for line in Path(__file__).with_name("agent").joinpath("__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split('"')[1]
    raise RuntimeError("no __version__ in agent/__init__.py")


setup(
    name="edge-agent",
    version=version(),
    description=(
        "Build INT8 TensorRT engines on Jetson devices, run camera inference, measure speed, power and recall drift, "
        "report over MQTT."
    ),
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.8",
    packages=find_packages(include=["agent", "agent.*", "calibration", "calibration.*"]),
    include_package_data=True,
    install_requires=[
        # Ed25519 command signatures (agent.mqtt.keys); python3-cryptography on Debian and JetPack
        "cryptography>=2.8",
        "numpy>=1.21",
        "onnx>=1.14",
        "onnxruntime>=1.16",
        "paho-mqtt>=2.0",
        "psutil>=5.8",
        "pyyaml>=5.4",
    ],
    extras_require={
        # OpenCV is an extra on purpose: JetPack's OpenCV is built with GStreamer (CSI and RTSP
        # cameras) and pip's wheel would shadow it. On a Jetson, install without this extra.
        "opencv": ["opencv-python-headless>=4.5.5"],
        "tensorrt": ["tensorrt", "pycuda"],
        "cuda-python": ["cuda-python"],
        "plots": ["matplotlib"],
        "test": [
            "pytest>=7",
            "hypothesis>=6",
            "scikit-learn",
            "statsmodels",
            "scipy",
            "jsonschema>=4.18",
            "pycocotools",  # the reference that detection AP is checked against
            "matplotlib",
            "vermin",
            # lint and types, run by scripts/test.sh under the default interpreter only
            'ruff==0.17.6; python_version >= "3.10"',
            'mypy==2.4.1; python_version >= "3.10"',
        ],
    },
    entry_points={"console_scripts": ["edge-agent=agent.cli.main:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.8",
        "Programming Language :: Python :: 3.12",
        "Operating System :: POSIX :: Linux",
    ],
)
