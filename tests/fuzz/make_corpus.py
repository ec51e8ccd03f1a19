#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

Seeds come from the project's own test data (tests/data): tokenizer and chat
cases, model configs, plus small hand-made safetensors images and protobuf
requests (encoded here by hand: no protobuf module needed). The shard_index
seeds (the writer's index and a few edits of it) are kept as committed files
and only edited copies are derived here. Run from anywhere; rewrites the
generated files in place and leaves other files alone.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "data")


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def nested(levels):
    """JSON arrays nested `levels` deep: the shape of the deep-nesting probes (issue 29)."""
    return "[" * levels + "]" * levels


def with_raw(obj, key, raw):
    """json.dumps(obj) with `key` set to the raw JSON text `raw` (e.g. a deep nest)."""
    return json.dumps(dict(obj, **{key: "RAW"})).replace('"RAW"', raw, 1)


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- tokenizer: flag byte (bit 0 allow_special, bit 1 skip_special, bit 2 ids) + text or recipe.
def tokenizer():
    cases = jsonl(os.path.join(DATA, "tokenizer", "tokenizer_cases.jsonl"))
    for i, case in enumerate(cases[::8]):  # every 8th: about 60 varied texts
        write("tokenizer", "text-%03d" % i, bytes([i % 4]) + case["text"].encode("utf-8"))
    extra = {
        "combining-after-token": "e\u0301 <|im_end|>\u0338 and <think>\u0301x</think>>\u0338 A\u030a",
        "special-as-text": "<|im_start|>user\nhi<|im_end|>",
        "invalid-utf8": b"ab\xc3(\xe2\x82\xf0\x9f\x98 end\xff",
        "hangul-jamo": "\u1100\u1161\u11a8 \uac00\u11a8",
    }
    for name, text in extra.items():
        raw = text if isinstance(text, bytes) else text.encode("utf-8")
        write("tokenizer", name, b"\x01" + raw)
        write("tokenizer", name + "-plain", b"\x02" + raw)
    # Id mode: single-byte tokens spelling a 4-byte character, split, then a vocab id and an added token.
    recipe = b"".join(b"\x00" + bytes([b]) for b in "😀".encode("utf-8"))
    write("tokenizer", "ids-split-emoji", b"\x04" + recipe + b"\x80\x10\x27\x00" + b"\xe0\x03" + b"\xf8\x01")
    write("tokenizer", "ids-dangling", b"\x06" + b"\x00\xf0\x00\x9f" + b"\xf9\x00")


# --- safetensors: whole file images laid out as the writer does.
def safetensors_image(tensors, metadata=None, pad=True):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    sizes = {"BF16": 2, "F16": 2, "F32": 4}
    for name, dtype, shape in tensors:
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes((len(data) + i) % 251 for i in range(n))
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors():
    write("safetensors", "typical", safetensors_image(
        [("model.embed_tokens.weight", "BF16", [16, 8]), ("model.norm.weight", "F32", [8]),
         ("lm_head.weight", "F16", [16, 8])], {"format": "pt"}))
    write("safetensors", "empty-and-scalar", safetensors_image(
        [("empty", "BF16", [0, 4]), ("scalar", "F32", []), ("vec", "F16", [3])], pad=False))
    write("safetensors", "no-tensors", safetensors_image([], {"format": "pt", "total": "0"}))
    # Overlap and a bad dtype: refusals to mutate from.
    img = safetensors_image([("a", "F32", [2]), ("b", "F32", [2])])
    write("safetensors", "overlap", img.replace(b'"data_offsets":[8,16]', b'"data_offsets":[4,12]'))
    write("safetensors", "bad-dtype", safetensors_image([("w", "F32", [1])]).replace(b"F32", b"I64"))
    write("safetensors", "tiny", b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    # Nesting at the 64-level limit (accepted), one past it, and far past it
    # where a recursive dump of the value would show (docs/security.md).
    def raw_header(text, data=b""):
        return struct.pack("<Q", len(text)) + text.encode() + data
    entry = '{"w":{"dtype":"F32","shape":%s,"data_offsets":%s}}'
    write("safetensors", "metadata-nested-64-levels",
          raw_header('{"__metadata__":{"x":%s}}' % nested(62)))
    write("safetensors", "metadata-nested-65-levels",
          raw_header('{"__metadata__":{"x":%s}}' % nested(63)))
    write("safetensors", "shape-nested-5000-levels",
          raw_header(entry % (nested(5000), "[0,4]"), bytes(4)))
    write("safetensors", "data-offsets-nested-5000-levels",
          raw_header(entry % ("[1]", nested(5000)), bytes(4)))


# --- model_config: the project's test configs and a Qwen3-8B-DMS-like one.
def model_config():
    models = os.path.join(DATA, "models")
    for name in sorted(os.listdir(models)):
        path = os.path.join(models, name, "config.json")
        if os.path.exists(path):
            with open(path, "rb") as f:
                write("model_config", name, f.read())
    qwen3_8b = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 4096,
        "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
        "max_position_embeddings": 40960, "rms_norm_eps": 1e-06, "rope_theta": 1000000,
        "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "use_sliding_window": False, "sliding_window": None, "bos_token_id": 151643,
        "eos_token_id": [151645, 151643], "hidden_act": "silu", "attention_bias": False,
        "dms_alpha_scale": 100.0, "dms_initial_alpha_offset": 5.0, "dms_window_size": 512,
        "dms_cr": 8, "dms_separate_alpha": False, "dms_alpha_per": "head",
        "dms_disable_eviction": False,
    }
    write("model_config", "qwen3-8b-dms", json.dumps(qwen3_8b, indent=2))
    v5 = dict(qwen3_8b)
    del v5["rope_theta"], v5["torch_dtype"], v5["rope_scaling"]
    v5["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0}
    v5["dtype"] = "bfloat16"
    v5["layer_types"] = ["full_attention"] * 36
    write("model_config", "qwen3-8b-v5", json.dumps(v5))
    # Nesting at the limit (accepted: an unknown key), past it, far past it.
    write("model_config", "nested-64-levels", with_raw(qwen3_8b, "x", nested(63)))
    write("model_config", "nested-65-levels", with_raw(qwen3_8b, "x", nested(64)))
    write("model_config", "nested-5000-levels", with_raw(qwen3_8b, "rope_scaling", nested(5000)))
    # Sizes each within 2^30 that cannot be served (docs/security.md).
    huge = {
        "layers-10000000": {"num_hidden_layers": 10000000},
        "window-2-30": {"dms_window_size": 1 << 30},
        "context-1": {"max_position_embeddings": 1},
        "context-2-30": {"max_position_embeddings": 1 << 30, "dms_window_size": 1 << 30},
        "vocab-times-hidden-2-60": {"vocab_size": 1 << 30, "hidden_size": 1 << 30},
        "layers-times-kv-heads-2-31": {"num_hidden_layers": 1 << 28},
    }
    for name, edit in huge.items():
        write("model_config", name, json.dumps(dict(qwen3_8b, **edit)))


# --- chat_template: JSON requests from the chat cases, plus refusals.
def chat_template():
    for i, case in enumerate(jsonl(os.path.join(DATA, "tokenizer", "chat_cases.jsonl"))):
        req = {k: case[k] for k in ("messages", "enable_thinking", "add_generation_prompt") if k in case}
        write("chat_template", "case-%03d" % i, json.dumps(req, ensure_ascii=False))
    write("chat_template", "tool-role", json.dumps({"messages": [{"role": "tool", "content": "x"}]}))
    write("chat_template", "tools", json.dumps({"tools": [{"type": "function"}], "messages": []}))
    for levels in (61, 62, 4997):  # message content: 3 levels down, so 64, 65, 5000 deep
        write("chat_template", "nested-%d-levels" % (levels + 3), json.dumps(
            {"messages": [{"role": "user", "content": "RAW"}]}).replace('"RAW"', nested(levels)))
    write("chat_template", "reasoning-null", json.dumps({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>\nr\n</think>\n\na", "reasoning_content": None}]}))


# --- request_builder: flag byte + a serialized v1.GenerateRequest / v1.ChatRequest.
def varint(n):
    out = b""
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return key + varint(len(data)) + data


def packed(num, values):
    return field(num, 2, b"".join(varint(v) for v in values))


def sampling(temperature=None, top_p=None, top_k=0, seed=None):
    s = b""
    if temperature is not None:
        s += field(1, 5, temperature)
    if top_p is not None:
        s += field(2, 5, top_p)
    if top_k:
        s += field(3, 0, top_k)
    if seed is not None:
        s += field(5, 0, seed)
    return s


def chat_message(role, content, reasoning=None):
    m = field(1, 2, role) + field(2, 2, content)
    if reasoning is not None:
        m += field(3, 2, reasoning)
    return m


def request_builder():
    gen_text = field(1, 2, "req-1") + field(2, 2, "Hello, world! <|im_end|>") + field(4, 0, 16) + \
        field(5, 2, sampling(0.7, 0.9, 40, 1234)) + field(6, 2, "\n\n") + packed(7, [151645]) + field(8, 0, 2)
    gen_ids = field(1, 2, "ids") + packed(3, [1, 2, 3, 4, 5]) + field(4, 0, 8) + field(10, 0, 1)
    chat = field(1, 2, "chat-1") + field(2, 2, chat_message("system", "Be brief.")) + \
        field(2, 2, chat_message("user", "What is 2+2?")) + \
        field(2, 2, chat_message("assistant", "4", "simple sum")) + \
        field(2, 2, chat_message("user", "And 3+3?")) + field(3, 0, 0) + field(4, 0, 32) + \
        field(5, 2, sampling(0.0)) + field(6, 2, "</s>")
    bad = field(2, 2, "x") + packed(3, [7]) + field(8, 0, 21)
    for preset in range(4):
        p = preset << 2
        write("request_builder", "generate-text-p%d" % preset, bytes([p]) + gen_text)
        write("request_builder", "generate-ids-p%d" % preset, bytes([p]) + gen_ids)
        write("request_builder", "chat-p%d" % preset, bytes([p | 1]) + chat)
    write("request_builder", "generate-ids-no-tokenizer", bytes([2]) + gen_ids)
    write("request_builder", "chat-no-tokenizer", bytes([3]) + chat)
    write("request_builder", "generate-both-prompts", bytes([0]) + bad)


# --- shard_index: edits of the writer's own index (corpus/shard_index/writer-index, committed).
def shard_index():
    with open(os.path.join(HERE, "corpus", "shard_index", "writer-index"), encoding="utf-8") as f:
        index = json.load(f)
    wm = index["weight_map"]
    names = sorted(wm)
    missing = dict(index, weight_map={k: v for k, v in wm.items() if k != names[3]})
    write("shard_index", "missing-tensor", json.dumps(missing, indent=2))
    wrong = dict(index, weight_map=dict(wm, **{names[0]: wm[names[-1]]}))
    write("shard_index", "wrong-shard", json.dumps(wrong, indent=2))
    escape = dict(index, weight_map=dict(wm, **{names[1]: "../model-00001-of-00005.safetensors"}))
    write("shard_index", "path-escape", json.dumps(escape))
    not_shard = dict(index, weight_map=dict(wm, **{names[2]: "config.json"}))
    write("shard_index", "config-as-shard", json.dumps(not_shard))
    write("shard_index", "nested-64-levels", with_raw(index, "x", nested(63)))
    write("shard_index", "nested-65-levels", with_raw(index, "x", nested(64)))
    write("shard_index", "nested-5000-levels", with_raw(index, "metadata", nested(5000)))


# --- tokenizer_json: tokenizer.json text (small byte-level BPE files and edits of them).
def byte_level_chars():
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def tokenizer_json():
    vocab = {c: b for b, c in byte_level_chars().items()}
    vocab.update({"ab": 256, "abc": 257})
    base = {
        "version": "1.0",
        "added_tokens": [{"id": 300, "content": "<|im_end|>", "special": True, "normalized": False}],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\p{L}+|\\s+"}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": [["a", "b"], ["ab", "c"]], "byte_fallback": False},
    }
    write("tokenizer_json", "minimal", json.dumps(base))
    write("tokenizer_json", "minimal-indented", json.dumps(base, indent=1, ensure_ascii=False))
    older = json.loads(json.dumps(base))
    older["model"]["merges"] = ["a b", "ab c"]
    write("tokenizer_json", "string-merges", json.dumps(older))
    small = '{"model": {"merges": [["a", "b"], "ab c", 7, ["x"], [["y", "z"]], {"a": "b"}], "type": "BPE", '
    write("tokenizer_json", "bad-merges", small + '"vocab": {"a": 0, "b": 1}}}')
    write("tokenizer_json", "bad-ids", '{"model": {"vocab": {"a": -1, "b": 1.5, "c": 2147483648, "d": null, '
          '"e": {"x": [1]}, "f": [2], "g": 3, "g": "x", "h": "y", "h": 4}, "merges": []}}')
    write("tokenizer_json", "repeated-keys", '{"model": {"vocab": {"a": 1}, "merges": [["a", "b"]]}, '
          '"model": {"vocab": 5, "vocab": {"b": 2}, "merges": [], "merges": {}}, "x": {"model": {"vocab": {}}}}')
    write("tokenizer_json", "not-an-object", '[{"model": {"vocab": {"a": 1}}}]')
    write("tokenizer_json", "truncated", json.dumps(base)[:700])
    write("tokenizer_json", "nested-64-levels", with_raw(base, "normalizer", nested(63)))
    write("tokenizer_json", "nested-65-levels", with_raw(base, "normalizer", nested(64)))
    write("tokenizer_json", "nested-5000-levels", with_raw(base, "normalizer", nested(5000)))


if __name__ == "__main__":
    shard_index()
    tokenizer()
    tokenizer_json()
    safetensors()
    model_config()
    chat_template()
    request_builder()
