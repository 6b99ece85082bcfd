"""EdgeGate: decide, with evidence, whether an edge AI model is fit to ship, then ship it safely."""

from pathlib import Path

__version__ = "0.1.0"


def data_dir(name: str) -> Path:
    """A data folder that ships beside the code: `edgegate_cli/_<name>` in an installed wheel, `<name>/`
    at the top of a checkout (schemas, probe_models)."""
    package = Path(__file__).parent
    packaged = package / f"_{name}"
    return packaged if packaged.is_dir() else package.parent / name
