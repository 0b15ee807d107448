from setuptools import find_packages, setup

setup(
    name="botkit",
    version="0.1.0",
    description="A framework for Stream Chat bots: custom commands, before-send hooks and push events on Flask.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["botkit", "botkit.*"]),
    package_data={
        "botkit": [
            "py.typed",
            "adapters/playground/static/*",
            "adapters/playground/templates/*",
            "cli/templates/new/*.tmpl",
            "cli/templates/new/tests/*.tmpl",
        ]
    },
    install_requires=[
        "flask>=3.0",
        "gunicorn>=27.0.1,<28",  # botkit.adapters.gunicorn_worker relies on its gthread internals
        "marshmallow>=3.20",
        "requests>=2.31",
        "blinker>=1.7",
        "pyjwt>=2.8",
        "click>=8.1",
    ],
    extras_require={
        "redis": ["redis>=5"],
        "huey": ["huey>=2.5"],
        "metrics": ["prometheus-client>=0.20"],
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "redis>=5",
            "huey>=2.5",
            "prometheus-client>=0.20",
            "playwright>=1.40",
            "mypy>=1.10",
            "ruff>=0.5",
            "types-requests",
            "pyinstrument>=4",
        ],
    },
    entry_points={
        "console_scripts": ["botkit=botkit.cli:main"],
        "pytest11": ["botkit=botkit.pytest_plugin"],
    },
)
