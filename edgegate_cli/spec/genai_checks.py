"""Checks for a GenAI model folder in onnxruntime-genai format (a directory with genai_config.json).

`onnx.checker` rejects such graphs (they use ONNX Runtime contrib ops), so the folder is checked
by its config instead: the decoder file it names exists inside the folder, and a tokenizer is there.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidInput

CONFIG = "genai_config.json"


def check_genai_folder(info):
    """Return `info` (a validators.ModelInfo) completed for a GenAI folder, or raise InvalidInput."""
    root = Path(info.path)
    cfg_path = root / CONFIG
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{cfg_path}: line {exc.lineno}: malformed JSON: {exc.msg}", path=str(cfg_path)) from None
    decoder = ((config.get("model") or {}).get("decoder") or {})
    filename = decoder.get("filename")
    if not isinstance(filename, str) or not filename:
        raise InvalidInput(f"{cfg_path}: $.model.decoder.filename: missing; an onnxruntime-genai config names "
                           "its decoder model there", path=str(cfg_path))
    target = (root / filename).resolve()
    if root.resolve() not in target.parents:
        raise InvalidInput(f"{cfg_path}: $.model.decoder.filename: {filename!r} leaves the model folder",
                           path=str(cfg_path))
    if not target.is_file():
        raise InvalidInput(f"{cfg_path}: $.model.decoder.filename: {filename} is missing from {root}",
                           path=str(cfg_path))
    if not (root / "tokenizer.json").is_file():
        raise InvalidInput(f"{root}: no tokenizer.json; an onnxruntime-genai folder needs its tokenizer",
                           path=str(root))
    context = (config.get("model") or {}).get("context_length")
    return info.model_copy(update={"onnx_path": str(target), "context_length": context})
