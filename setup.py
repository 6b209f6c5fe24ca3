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
    # the dashboard's page scripts and the vendored uPlot (agent/fleet/static/uplot/LICENSE: MIT)
    package_data={"agent.fleet": ["static/*.js", "static/*.css", "static/uplot/*"]},
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
        # the operator's side: Prometheus /metrics (fleet serve); a PostgreSQL store (fleet collect; psycopg 3
        # runs on Python 3.8 up to its 3.2 series, which pip picks there)
        "fleet": ["prometheus_client>=0.12", "psycopg[binary]>=3.1"],
        "test": [
            "pytest>=7",
            "hypothesis>=6",
            "scikit-learn",
            "statsmodels",
            "scipy",
            "jsonschema>=4.18",
            "pycocotools",  # the reference that detection AP is checked against
            "matplotlib",
            "prometheus_client>=0.12",  # the dashboard's /metrics, read back by its own parser
            "psycopg[binary]>=3.1",  # the fleet store on PostgreSQL (tests/fleet, a private cluster)
            "selenium",  # the dashboard in Debian's headless chromium (tests/fleet/test_browser.py)
            'amqtt; python_version >= "3.10"',  # the demo's broker without mosquitto (tests/daemon/test_demo.py)
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
