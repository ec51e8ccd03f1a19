#!/usr/bin/env python3
"""Writes tests/data/tokenizer/{tokenizer_cases,chat_cases}.jsonl.

Golden ids come from Hugging Face `tokenizers` (Tokenizer.from_file on the real
Qwen3 tokenizer.json); chat texts from `transformers` (AutoTokenizer +
apply_chat_template). Needs those two packages (the GPU machine has them):

  python3 tests/reference/make_tokenizer_golden.py \
      --tokenizer-dir ~/.cache/dms-serve/tokenizer-qwen3 --out-dir tests/data/tokenizer

Formats (same as ../shared/fixtures):
  tokenizer_cases.jsonl: {"text", "ids", "decoded"}; ids = encode(text) without
    added special tokens; decoded = decode(ids, skip_special_tokens=False).
  chat_cases.jsonl: {"messages", "enable_thinking", "add_generation_prompt",
    "text", "ids"}; text = apply_chat_template(..., tokenize=False).
"""

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402


def corpus_digest(texts, chats):
    blob = json.dumps([texts, chats], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def auto_ids(auto, text):
    # transformers' fast tokenizer; must agree with the raw tokenizers library.
    return list(auto(text, add_special_tokens=False)["input_ids"])


def template_ids(auto, messages, thinking, gen_prompt):
    out = auto.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen_prompt,
                                   enable_thinking=thinking)
    if hasattr(out, "keys"):  # transformers 5 may return a BatchEncoding
        out = out["input_ids"]
    return list(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()

    from tokenizers import Tokenizer
    import transformers
    from transformers import AutoTokenizer

    tok = Tokenizer.from_file(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(args.tokenizer_dir)
    texts = tokenizer_corpus.text_cases()
    chats = tokenizer_corpus.chat_cases()
    print(f"transformers {transformers.__version__}; corpus sha256 {corpus_digest(texts, chats)}")

    problems = 0
    rows = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        if auto_ids(auto, text) != ids:
            problems += 1
            print(f"MISMATCH transformers vs tokenizers on {text[:60]!r}")
        rows.append({"text": text, "ids": ids, "decoded": decoded})

    chat_rows = []
    for messages, thinking, gen_prompt in chats:
        text = auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen_prompt,
                                        enable_thinking=thinking)
        ids = tok.encode(text, add_special_tokens=False).ids
        if template_ids(auto, messages, thinking, gen_prompt) != ids:
            problems += 1
            print(f"MISMATCH chat ids on {text[:60]!r}")
        chat_rows.append({"messages": messages, "enable_thinking": thinking,
                          "add_generation_prompt": gen_prompt, "text": text, "ids": ids})

    os.makedirs(args.out_dir, exist_ok=True)
    write_jsonl(os.path.join(args.out_dir, "tokenizer_cases.jsonl"), rows)
    write_jsonl(os.path.join(args.out_dir, "chat_cases.jsonl"), chat_rows)
    total_ids = sum(len(r["ids"]) for r in rows)
    print(f"wrote {len(rows)} text cases ({total_ids} ids) and {len(chat_rows)} chat cases; "
          f"{problems} cross-library mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
