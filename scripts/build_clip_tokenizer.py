"""Rebuild the CLIP tokenizer shipped in data/clip-tokenizer from CLIP's BPE merge list.

CLIP's byte-pair vocabulary (49,408 tokens) is published as a gzip'd list of merges. This
script turns that list into the ``vocab.json`` + ``merges.txt`` pair that
``transformers.CLIPTokenizer.from_pretrained`` reads, so the kit can tokenize exactly like
Stable Diffusion 1.x without downloading anything at run time.

Usage: python scripts/build_clip_tokenizer.py bpe_simple_vocab_16e6.txt.gz data/clip-tokenizer
"""

import gzip
import json
import sys
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # CLIP keeps the first 48,894 merges of the list


def byte_alphabet() -> list[str]:
    """The 256 stand-in characters GPT-2/CLIP use for raw bytes, in vocabulary order.

    Printable bytes stand for themselves and come first; the other bytes are mapped to
    the characters from U+0100 on and follow them.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def build(gz_path: Path, out_dir: Path) -> None:
    with gzip.open(gz_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    alphabet = byte_alphabet()
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {len(tokens)} tokens and {len(merges)} merges to {out_dir}")


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]))
