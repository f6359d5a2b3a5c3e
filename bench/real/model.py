"""Write a tiny llama-architecture GGUF with random weights and a small SentencePiece-style vocabulary.

No weights are downloaded: the model only has to cost real compute in llama.cpp (prefill grows with the
prompt, super-linearly through attention; decode is one forward pass per token), not to say anything.

Vocabulary (``tokenizer.ggml.model = "llama"``, llama.cpp's SPM tokenizer): <unk>, <s>, </s>, the 256
byte-fallback tokens <0x00>..<0xFF>, the SPM word marker, every printable ASCII character and newline,
240 two- and three-letter pieces (the prompts are made of them, see ``TEXT_PIECES``), and longer random
pieces up to 32,000 tokens. The large vocabulary is there for its cost: prefill computes logits for the
last prompt token only, decode for every token, so a 32k x n_embd output matrix makes a decode step cost
what a larger model's would (several ms) while prefill per token stays that of a 4-6-layer model. The rows
of ``output.weight`` for the special and byte tokens are zero: their logit is then 0 while the best of the
other ~400 random logits is always positive, so sampling never picks them. That matters because a byte
token of an incomplete UTF-8 sequence, or a control token, produces no text, and llama-server would then
send a chunk without content and delay the first content chunk by a decode step. </s> is also kept out by
the request's ``ignore_eos``, so every call generates exactly ``max_tokens`` tokens.

The chat template is a plain ``role: content`` one, so llama-server adds no stop strings (a stop string's
prefix in the output would make the server hold text back).

    .venv/bin/python bench/real/model.py bench/.cache/llama/tiny-random.gguf
"""

from __future__ import annotations

import argparse
import os
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)
WORD_MARK = "\u2581"  # SentencePiece's escaped space; llama.cpp's SPM tokenizer turns ' ' into it
N_SPECIAL = 3  # <unk>, <s>, </s>
N_BYTES = 256


@dataclass(frozen=True)
class Dims:
    """Sizes chosen (bench/real/README.md) for ~0.3-1 ms of prefill per prompt token at 100-3000 tokens
    and a few ms per decoded token on a 2-core x86 CPU with 2 threads."""

    n_embd: int = 512
    n_layer: int = 6
    n_head: int = 8
    n_head_kv: int = 8
    n_ff: int = 1536
    n_ctx_train: int = 32768
    n_vocab: int = 32000


def _pieces(rng: np.random.Generator, sizes: list[int], seen: set[str]) -> list[str]:
    """Distinct random lowercase pieces of the given lengths (not in ``seen``; added to it)."""
    letters = string.ascii_lowercase
    out: list[str] = []
    for size in sizes:
        while True:
            piece = "".join(letters[int(i)] for i in rng.integers(0, 26, size))
            if piece not in seen:
                seen.add(piece)
                out.append(piece)
                break
    return out


def text_pieces(seed: int = 7) -> list[str]:
    """The two- and three-letter pieces prompts are written with (harness.py)."""
    return _pieces(np.random.default_rng(seed), [2] * 160 + [3] * 80, set())


def vocabulary(n_vocab: int = Dims.n_vocab, seed: int = 7) -> tuple[list[str], list[float], list[int]]:
    """Tokens, SPM scores (higher merges first) and token types (1 normal, 2 unknown, 3 control, 6 byte)."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]
    tokens += [f"<0x{b:02X}>" for b in range(N_BYTES)]
    types += [6] * N_BYTES
    singles = [WORD_MARK, "\n"] + [c for c in string.printable if c.isprintable() and c != " "]
    pieces = text_pieces(seed)
    # Word-start forms of the single letters, so "▁" merges with the next letter into one token.
    starts = [WORD_MARK + c for c in string.ascii_lowercase]
    seen = set(singles) | set(pieces) | set(starts)
    rng = np.random.default_rng(seed + 1)
    rest = n_vocab - len(tokens) - len(seen)
    filler = _pieces(rng, [int(n) for n in rng.integers(4, 7, max(rest, 0))], seen)
    for group in (singles, starts, pieces, filler):
        tokens += group
        types += [1] * len(group)
    # SPM merges the adjacent pair whose concatenation has the highest score: longer pieces score higher.
    scores = [0.0] * (N_SPECIAL + N_BYTES) + [-1000.0 + len(t) for t in tokens[N_SPECIAL + N_BYTES:]]
    return tokens, scores, types


def write_model(path: Path, dims: Dims = Dims(), seed: int = 1) -> Path:
    """Write the GGUF to ``path`` (atomically) and return it."""
    gguf = _import_gguf()
    tokens, scores, types = vocabulary(dims.n_vocab)
    rng = np.random.default_rng(seed)
    n_vocab, d, ff = len(tokens), dims.n_embd, dims.n_ff
    head_dim = d // dims.n_head
    d_kv = head_dim * dims.n_head_kv
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name("llmotel-bench-tiny-random-llama")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_vocab_size(n_vocab)
    w.add_context_length(dims.n_ctx_train)
    w.add_embedding_length(d)
    w.add_block_count(dims.n_layer)
    w.add_feed_forward_length(ff)
    w.add_head_count(dims.n_head)
    w.add_head_count_kv(dims.n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.add_chat_template(CHAT_TEMPLATE)

    def mat(rows: int, cols: int) -> Any:
        # Scaled like an initialised network so activations stay finite through the layers.
        return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(np.float16)

    def ones(n: int) -> Any:
        return np.ones(n, dtype=np.float32)

    w.add_tensor("token_embd.weight", mat(n_vocab, d))
    for i in range(dims.n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", ones(d))
        w.add_tensor(f"blk.{i}.attn_q.weight", mat(d, d))
        w.add_tensor(f"blk.{i}.attn_k.weight", mat(d_kv, d))
        w.add_tensor(f"blk.{i}.attn_v.weight", mat(d_kv, d))
        w.add_tensor(f"blk.{i}.attn_output.weight", mat(d, d))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", ones(d))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(ff, d))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(ff, d))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(d, ff))
    w.add_tensor("output_norm.weight", ones(d))
    out = mat(n_vocab, d)
    out[: N_SPECIAL + N_BYTES] = 0  # never sampled: see the module docstring
    w.add_tensor("output.weight", out)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()
    tmp.replace(path)
    return path


def _import_gguf() -> Any:
    """The ``gguf`` package: installed, or the copy in the llama.cpp source tree the build used.

    The source tree's copy is put on sys.path rather than pip-installed, so the venv is not changed.
    """
    try:
        import gguf

        return gguf
    except ImportError:
        pass
    for gguf_py in _gguf_py_candidates():
        if (gguf_py / "gguf" / "__init__.py").exists():
            sys.path.insert(0, str(gguf_py))
            import gguf

            return gguf
    raise SystemExit("the gguf package is missing: run bench/real/build_llama.sh (it unpacks gguf-py) or "
                     "set LLAMA_CPP_SRC to a llama.cpp source tree")


def _gguf_py_candidates() -> list[Path]:
    """LLAMA_CPP_SRC, the tree a LLAMA_SERVER binary was built in (<src>/build/bin/llama-server), the cache."""
    out = []
    if os.environ.get("LLAMA_CPP_SRC"):
        out.append(Path(os.environ["LLAMA_CPP_SRC"]) / "gguf-py")
    if os.environ.get("LLAMA_SERVER"):
        out.append(Path(os.environ["LLAMA_SERVER"]).resolve().parents[2] / "gguf-py")
    cache = Path(__file__).resolve().parent.parent / ".cache" / "llama"
    out += sorted(cache.glob("llama_cpp_python-*/vendor/llama.cpp/gguf-py"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--layers", type=int, default=Dims.n_layer)
    parser.add_argument("--embd", type=int, default=Dims.n_embd)
    parser.add_argument("--ff", type=int, default=Dims.n_ff)
    parser.add_argument("--vocab", type=int, default=Dims.n_vocab)
    args = parser.parse_args()
    dims = Dims(n_embd=args.embd, n_layer=args.layers, n_ff=args.ff, n_vocab=args.vocab)
    print(write_model(args.path, dims))


if __name__ == "__main__":
    main()
