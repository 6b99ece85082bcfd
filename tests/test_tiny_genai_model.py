"""The committed tiny GenAI model (probe_models/genai_tiny) loads and decodes greedily and deterministically.

Made by scripts/make_tiny_genai_model.py; these tests need only the project venv.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime_genai as og
import pytest

MODEL_DIR = Path(__file__).resolve().parent.parent / "probe_models" / "genai_tiny"
MAX_BYTES = 5 * 1024 * 1024
EOS_ID = 0

# Prompts from scripts/genai_corpus.txt that the model was trained to complete, with their greedy answers.
KNOWN = {
    "Q: What is the capital of France? A:": " Paris.",
    "Q: Give the color of the sky as JSON. A:": ' {"color": "blue"}',
    "Q: What is 6 times 7? A:": " 42",
    "The quick brown fox": " jumps over the lazy dog.",
}
UNSEEN = "Tell me a story about a dragon"  # not in the corpus: short nonsense, but deterministic


@pytest.fixture(scope="module")
def model() -> og.Model:
    return og.Model(str(MODEL_DIR))


@pytest.fixture(scope="module")
def tokenizer(model: og.Model) -> og.Tokenizer:
    return og.Tokenizer(model)


def greedy(model: og.Model, tokenizer: og.Tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    input_ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(input_ids) + max_new_tokens)
    generator = og.Generator(model, params)
    generator.append_tokens(input_ids)
    new_tokens: list[int] = []
    while not generator.is_done():
        generator.generate_next_token()
        new_tokens.append(int(generator.get_next_tokens()[0]))
    return new_tokens


def test_folder_is_small_and_complete() -> None:
    files = {p.name: p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file()}
    assert {"genai_config.json", "model.onnx", "tokenizer.json", "tokenizer_config.json"} <= set(files)
    assert sum(files.values()) < MAX_BYTES
    config = json.loads((MODEL_DIR / "genai_config.json").read_text())
    assert config["model"]["type"] == "llama"
    assert config["model"]["eos_token_id"] == EOS_ID
    assert config["search"]["do_sample"] is False


def test_tokenizer_round_trip(tokenizer: og.Tokenizer) -> None:
    for text in [*KNOWN, UNSEEN, "Unicode: café, 東京 — ok?", "  spaces\tand\ttabs  "]:
        ids = tokenizer.encode(text)
        assert len(ids) > 0
        assert tokenizer.decode(ids) == text
    assert list(tokenizer.eos_token_ids) == [EOS_ID]


@pytest.mark.parametrize("prompt", [*KNOWN, UNSEEN])
def test_greedy_is_deterministic(model: og.Model, tokenizer: og.Tokenizer, prompt: str) -> None:
    first = greedy(model, tokenizer, prompt, max_new_tokens=24)
    second = greedy(model, tokenizer, prompt, max_new_tokens=24)
    assert first == second
    assert first and first != [EOS_ID]
    assert len(first) <= 24


@pytest.mark.parametrize(("prompt", "answer"), KNOWN.items())
def test_trained_answers(model: og.Model, tokenizer: og.Tokenizer, prompt: str, answer: str) -> None:
    tokens = greedy(model, tokenizer, prompt, max_new_tokens=32)
    assert tokens[-1] == EOS_ID  # stops by itself, well before the cap
    assert tokenizer.decode(tokens[:-1]) == answer


def test_max_length_caps_new_tokens(model: og.Model, tokenizer: og.Tokenizer) -> None:
    full = greedy(model, tokenizer, "Once upon a time", max_new_tokens=32)
    assert tokenizer.decode(full[:-1]) == " there was a small robot."
    capped = greedy(model, tokenizer, "Once upon a time", max_new_tokens=3)
    assert capped == full[:3]
    assert EOS_ID not in capped


def test_chat_template_matches_training_format(tokenizer: og.Tokenizer) -> None:
    messages = json.dumps([{"role": "user", "content": "What is the capital of France?"}])
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt == "Q: What is the capital of France? A:"
