"""Generate the tiny GenAI test model in ``probe_models/genai_tiny/`` from nothing downloaded.

What it makes: an onnxruntime-genai model folder (``genai_config.json``, ``model.onnx`` (+ ``.data``),
``tokenizer.json``, ``tokenizer_config.json``) holding a ~0.2M-parameter Llama-architecture decoder
that has been trained for a few seconds on ``scripts/genai_corpus.txt`` until it reproduces every line,
so greedy decoding of ``"Q: What is the capital of France? A:"`` gives ``" Paris."`` and then stops
at the end-of-text token. Nothing is downloaded: the tokenizer is trained here on the corpus, the model
config is written here and the weights start from a fixed seed.

Pipeline:
  1. train a byte-level BPE tokenizer (HF ``tokenizers``, vocab 512) on the corpus;
  2. build ``LlamaForCausalLM`` (transformers, random init, seed 1234), train it full-batch on the
     corpus lines (each line + end-of-text is one sequence starting at position 0, as at inference);
  3. ``save_pretrained`` into a temporary folder and convert it with onnxruntime-genai's own model
     builder (``python -m onnxruntime_genai.models.builder -p fp32 -e cpu``);
  4. replace the tokenizer files the builder wrote with the ones trained in step 1 (plain
     ``GPT2Tokenizer`` config that onnxruntime-extensions reads), set greedy search defaults;
  5. check with onnxruntime-genai: tokenizer round trip and greedy answers for every corpus question.

Install (a throwaway venv; the project venv is not touched and does not need these packages):

    python3 -m venv /tmp/genaienv
    /tmp/genaienv/bin/pip install torch==2.13.0 transformers==5.23.0 tokenizers==0.23.3 \\
        onnx==1.23.2 onnx-ir==1.1.0 onnxruntime==1.32.0 onnxruntime-genai==0.18.0 numpy

(``torch==2.13.0`` resolves to a CPU build where one is available locally; otherwise use
``--index-url https://download.pytorch.org/whl/cpu`` to avoid the multi-GB CUDA build.)

Run from the repository root (about a minute on 2 cores):

    /tmp/genaienv/bin/python scripts/make_tiny_genai_model.py            # writes probe_models/genai_tiny/
    /tmp/genaienv/bin/python scripts/make_tiny_genai_model.py --out DIR  # somewhere else

Re-runnable: the output folder is replaced. Seeds are fixed and torch runs single-threaded, so a re-run
on the same package versions reproduces the same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "scripts" / "genai_corpus.txt"
DEFAULT_OUT = REPO / "probe_models" / "genai_tiny"

SEED = 1234
EOT = "<|endoftext|>"
VOCAB_SIZE = 512
CONTEXT_LENGTH = 512  # room for a 256-token PromptPack case plus its prompt
MODEL_DIMS = {
    "hidden_size": 64,
    "intermediate_size": 192,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
TRAIN_STEPS = 600
LEARNING_RATE = 3e-3
MAX_SIZE_BYTES = 5 * 1024 * 1024
# Used when a PromptPack case gives `messages` instead of `prompt`: a user turn becomes "Q: ... A:".
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "Q: {{ message['content'] }} A:{% endif %}{% endfor %}"
)


def read_corpus() -> list[str]:
    lines = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def train_tokenizer(lines: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "pad_token": EOT,
        "add_bos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": CONTEXT_LENGTH,
        "chat_template": CHAT_TEMPLATE,
    }


def write_tokenizer(tok, folder: Path) -> None:
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")


def encode_examples(tok, lines: list[str]) -> list[list[int]]:
    eot_id = tok.token_to_id(EOT)
    return [tok.encode(line).ids + [eot_id] for line in lines]


def build_model(eot_id: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=CONTEXT_LENGTH,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        pad_token_id=eot_id,
        **MODEL_DIMS,
    )
    return LlamaForCausalLM(config)


def train(model, sequences: list[list[int]], pad_id: int) -> float:
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=TRAIN_STEPS, eta_min=LEARNING_RATE / 20)
    model.train()
    loss_value = float("nan")
    for step in range(TRAIN_STEPS):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_value = loss.item()
        if step % 100 == 0 or step == TRAIN_STEPS - 1:
            print(f"step {step:4d}  loss {loss_value:.4f}", flush=True)
    model.eval()
    return loss_value


def split_prompt(line: str) -> tuple[str, str]:
    """'Q: ... A: answer' -> ('Q: ... A:', ' answer'); a plain sentence -> (first words, the rest)."""
    if " A:" in line:
        head, tail = line.split(" A:", 1)
        return head + " A:", tail
    words = line.split(" ")
    cut = min(4, len(words) - 1)
    return " ".join(words[:cut]), " " + " ".join(words[cut:])


def run_builder(hf_dir: Path, out_dir: Path, cache_dir: Path) -> None:
    cmd = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "-i", str(hf_dir), "-o", str(out_dir), "-p", "fp32", "-e", "cpu", "-c", str(cache_dir),
    ]  # fmt: skip
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def finish_folder(out_dir: Path, tok) -> None:
    """Keep only what onnxruntime-genai needs; our tokenizer files; greedy search defaults."""
    keep = {"genai_config.json", "model.onnx", "model.onnx.data", "README.md"}
    for path in out_dir.iterdir():
        if path.name not in keep:
            path.unlink()
    write_tokenizer(tok, out_dir)
    cfg_path = out_dir / "genai_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["search"].update({"do_sample": False, "num_beams": 1, "top_k": 1, "max_length": CONTEXT_LENGTH})
    cfg_path.write_text(json.dumps(cfg, indent=4) + "\n")


def og_greedy(model, tokenizer, prompt: str, max_new_tokens: int = 32) -> list[int]:
    import onnxruntime_genai as og

    input_ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(input_ids) + max_new_tokens)
    gen = og.Generator(model, params)
    gen.append_tokens(input_ids)
    out: list[int] = []
    while not gen.is_done():
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    return out


def verify(out_dir: Path, tok, lines: list[str]) -> int:
    """Check the folder with onnxruntime-genai itself; return the number of lines reproduced."""
    import onnxruntime_genai as og

    model = og.Model(str(out_dir))
    tokenizer = og.Tokenizer(model)
    samples = lines[:5] + ["Unicode: café, naïve, 東京 — ok?", "  two  spaces\tand tab", '{"a": [1, 2]}']
    for text in samples:
        ours = [int(t) for t in tokenizer.encode(text)]
        assert ours == tok.encode(text).ids, (text, ours, tok.encode(text).ids)
        assert tokenizer.decode(ours) == text, (text, tokenizer.decode(ours))
    eot_id = tok.token_to_id(EOT)
    ok = 0
    print("\n| prompt | greedy output |\n|---|---|")
    for line in lines:
        prompt, expected = split_prompt(line)
        ids = og_greedy(model, tokenizer, prompt)
        text = tokenizer.decode([t for t in ids if t != eot_id])
        stopped = bool(ids) and ids[-1] == eot_id
        ok += int(text == expected and stopped)
        print(f"| `{prompt}` | `{text}`{'' if stopped else ' (no EOS)'} |")
    print(f"\nreproduced {ok}/{len(lines)} corpus lines exactly (with end-of-text)")
    return ok


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output model folder (replaced)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    lines = read_corpus()
    tok = train_tokenizer(lines)
    eot_id = tok.token_to_id(EOT)
    model = build_model(eot_id)
    print(f"corpus lines {len(lines)}, vocab {tok.get_vocab_size()}, "
          f"parameters {sum(p.numel() for p in model.parameters())}")  # fmt: skip
    train(model, encode_examples(tok, lines), pad_id=eot_id)

    readme = args.out / "README.md"
    readme_text = readme.read_text() if readme.exists() else None
    with tempfile.TemporaryDirectory(prefix="tiny-genai-") as tmp:
        hf_dir, build_dir = Path(tmp) / "hf", Path(tmp) / "onnx"
        model.save_pretrained(hf_dir)
        write_tokenizer(tok, hf_dir)
        run_builder(hf_dir, build_dir, Path(tmp) / "cache")
        if args.out.exists():
            shutil.rmtree(args.out)
        shutil.copytree(build_dir, args.out)
    if readme_text is not None:
        readme.write_text(readme_text)
    finish_folder(args.out, tok)

    size = folder_size(args.out)
    print(f"\nwrote {args.out} ({size} bytes): {sorted(os.listdir(args.out))}")
    if size >= MAX_SIZE_BYTES:
        print("model folder is too large", file=sys.stderr)
        return 1
    ok = verify(args.out, tok, lines)
    return 0 if ok == len(lines) else 1


if __name__ == "__main__":
    sys.exit(main())
