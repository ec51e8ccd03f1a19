"""The text and chat corpus behind tests/data/tokenizer/*.jsonl.

Pure Python (no third-party imports) so the corpus can be inspected anywhere;
make_tokenizer_golden.py turns it into golden ids with the Hugging Face
libraries. Every case is chosen to stress one exactness hazard of a byte-level
BPE tokenizer: the NFC normalizer, the Qwen2 split regex (contractions, \\p{L},
\\p{N}, whitespace lookahead), added/special tokens, and multi-byte UTF-8.
Deterministic: the random part uses a fixed seed.
"""

import random
import unicodedata

SEED = 20261126

# ---------------------------------------------------------------------------
# Hand-written text cases, grouped by hazard.
# ---------------------------------------------------------------------------

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
    "Call me Ishmael. Some years ago - never mind how long precisely - I went to sea.",
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong stepped out first.",
    "Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say that they were perfectly normal.",
    "\"Hello,\" she said. \"How are you?\"",
    "A sentence with a trailing newline.\n",
    "Two sentences.  Separated by two spaces.",
    "Lowercase sentence without punctuation",
    "ALL CAPS SENTENCE SHOUTING AT THE READER!",
    "Title Case For Every Word In This Line",
    "camelCaseIdentifier and snake_case_identifier and kebab-case-identifier",
    "The U.S.A. and the U.K. signed the treaty on Jan. 5th.",
    "e.g., i.e., etc., vs., approx.",
    "He said: 'single quotes' and \"double quotes\" and `backticks`.",
    "Parentheses (like this), brackets [like this], braces {like this}.",
    "An em dash\u2014like this\u2014and an en dash\u2013too.",
    "Ellipsis\u2026 and three dots...",
    "Smart quotes: \u201cquoted\u201d and \u2018single\u2019 and it\u2019s.",
    "The model achieved 87.5% accuracy on the test set (n=1,024).",
    "Question? Answer! Statement. Aside; list: one, two, three.",
    "Antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z",
]

_CONTRACTION_SUFFIXES = ["s", "t", "re", "ve", "m", "ll", "d"]


def _contraction_cases():
    cases = []
    for suf in _CONTRACTION_SUFFIXES:
        # Lower, upper, and every mixed casing of the suffix: the regex is (?i:...).
        variants = sorted({
            "".join(c.upper() if (mask >> i) & 1 else c for i, c in enumerate(suf))
            for mask in range(1 << len(suf))
        })
        cases.append(" ".join("it'" + v for v in variants))
        cases.append(" ".join("IT'" + v for v in variants))
    cases += [
        "don't DON'T Don'T dOn'T",
        "I'm I'M i'm",
        "you're YOU'RE You'Re",
        "we've WE'VE We'Ve",
        "she'll SHE'LL She'Ll",
        "they'd THEY'D",
        "'s at the start",
        "'S 'T 'RE 'VE 'M 'LL 'D",
        "''s double apostrophe",
        "'''",
        "the 1990's and the '90s",
        "rock'n'roll",
        "O'Brien O'NEILL",
        "y'all'd've",
        "it's-its it\u2019s (curly apostrophe is not a contraction)",
        "cats' toys and dogs's bones",
        " 's leading space",
        "x'sy x'LLz x'dd",
        "ʼs modifier apostrophe",
        "'\n's\n'LL",
    ]
    return cases


def _number_cases():
    cases = [
        "0",
        "7",
        "42",
        "123",
        "1234567890",
        "12345678901234567890123456789012345678901234567890",
        "9" * 80,
        "3.141592653589793238462643383279",
        "-273.15",
        "+1 (555) 123-4567",
        "6.022e23 and 1.6E-19",
        "0x7fffffff 0b1010 0o777",
        "1 2 3 4 5",
        "1,234,567.89",
        "12:34:56.789",
        "v1.2.3-rc.4+build.5",
        "2nd 3rd 4th 21st 100th",
        "abc123def456",
        "\u0660\u0661\u0662\u0663 Arabic-Indic digits",
        "\u0966\u0967\u0968 Devanagari digits",
        "\uff10\uff11\uff12\uff13 fullwidth digits",
        "x\u00b2 + y\u00b3 = z\u00b9",
        "H\u2082O and CO\u2082",
        "\u00bd \u00bc \u00be \u2153",
        "\u2460\u2461\u2462 circled",
        "\u2160 \u2161 \u2162 \u2163 \u216b Roman numerals",
        "\u2170\u2171\u2172 small Roman",
        "Chapter \u216b and Louis \u2166",
        "\U0001d7ce\U0001d7cf\U0001d7d0 math digits",
        "\u0e51\u0e52\u0e53 Thai digits",
        "\u4e00\u4e8c\u4e09 \u3007 \u5341",
        "1\u00a0000\u00a0000",
    ]
    return cases


def _whitespace_cases():
    return [
        " ",
        "  ",
        "   ",
        "\t",
        "\t\t\t",
        "\n",
        "\n\n",
        "\n\n\n\n\n\n\n\n\n\n\n\n",
        "\r",
        "\r\n",
        "\r\n\r\n\r\n",
        "a\rb",
        "a\r\rb",
        "lone\rcarriage\rreturns\r",
        "trailing spaces   ",
        "trailing tab\t",
        "trailing newline and spaces\n   ",
        "   leading spaces",
        "\tleading tab",
        "\n\nleading newlines",
        "word  word   word    word",
        "a \n b",
        "a  \n\n  b",
        "a\t\n\tb",
        " \t \n \r\n \t ",
        "line1\nline2\r\nline3\rline4",
        "x \r\n y",
        "end with space ",
        "space before punctuation ! ?",
        "  !!",
        "\u3000ideographic\u3000space",
        "nbsp\u00a0between\u00a0words",
        "thin\u2009space and hair\u200aspace",
        "line\u2028separator\u2029paragraph",
        "next\u0085line",
        "vertical\x0btab and form\x0cfeed",
        "many spaces" + " " * 40 + "then text",
        "\n \n \n",
        " \n",
        "\n ",
        "a" + "\n" * 7 + "b",
        "tab\t \tmix\t  \t",
    ]


def _punctuation_cases():
    return [
        "!!!",
        "???",
        "...",
        "?!?!?!",
        "----------",
        "==========",
        "**bold** __under__ ~~strike~~",
        "@@@ ### $$$ %%% ^^^ &&& ***",
        "((()))[[[]]]{{{}}}",
        "a...b",
        "!!!\n",
        "?!\r\n\r\n",
        "...\n\n\n",
        "<<>> <= >= == != === !== => -> :: ..",
        "\u300c\u300d\u3001\u3002\u3002\u3002",
        "\u00bfQu\u00e9? \u00a1Hola!",
        "\u060c \u061f \u061b",
        "\u00ab\u00bb \u2039\u203a \u201e\u201c",
        "#!/bin/bash",
        "/* */ // <!-- -->",
        "| --- | --- |",
        "~`!@#$%^&*()_+-={}[]|\\:\";'<>?,./",
        "'quoted'",
        "\u2022 bullet \u00b7 middle dot \u2023 triangle",
        "\u00a9 \u00ae \u2122 \u00a7 \u00b6 \u2020 \u2021",
        "$100 \u20ac50 \u00a330 \u00a51000 \u20b9200 \u20bf0.1",
    ]


def _code_cases():
    return [
        "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
        "class Foo(Bar):\n    \"\"\"Docstring.\"\"\"\n\n    def __init__(self, x: int = 0) -> None:\n        self._x = x\n",
        "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\nprint(f\"{x.shape=}\")\n",
        "if __name__ == \"__main__\":\n\tmain()\n",
        "lambda x: x**2 if x > 0 else -x  # comment",
        "#include <vector>\n\nint main() {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) x *= 2;\n  return 0;\n}\n",
        "template <typename T>\nT Max(const T& a, const T& b) { return a < b ? b : a; }",
        "auto ptr = std::make_unique<Foo>(/*arg=*/42);\nptr->Bar()->Baz();",
        "#define DMS_RETURN_IF_ERROR(expr) \\\n  do { auto _s = (expr); if (!_s.ok()) return _s; } while (0)",
        "{\"name\": \"dms\", \"version\": 1, \"tags\": [\"a\", \"b\"], \"nested\": {\"x\": null, \"y\": true, \"z\": -1.5e-3}}",
        "{\n  \"key\": \"value\",\n  \"list\": [\n    1,\n    2\n  ]\n}",
        "[{\"role\":\"user\",\"content\":\"hi\"}]",
        "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
        "<html>\n<body>\n<p class=\"x\">Hello &amp; welcome</p>\n</body>\n</html>",
        "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
        "for i in $(seq 1 10); do echo \"$i\"; done | sort -n > out.txt 2>&1",
        "^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@[a-z]+\\.[a-z]{2,}$",
        "x=1;y=2;z=x+y;",
        "    indented four\n        indented eight\n\t\ttwo tabs\n",
        "const f = async (a, b) => { await g(a ?? b); };",
        "diff --git a/x.cc b/x.cc\n@@ -1,3 +1,4 @@\n-old line\n+new line\n",
        "\\begin{equation} E = mc^{2} \\end{equation}",
    ]


def _url_cases():
    return [
        "https://www.example.com/",
        "http://localhost:8080/v1/completions?stream=true&n=2",
        "https://en.wikipedia.org/wiki/Unicode#History",
        "ftp://user:pass@files.example.org/pub/file.tar.gz",
        "mailto:someone@example.com",
        "first.last+tag@sub.example.co.uk",
        "C:\\Users\\Public\\Documents\\file.txt",
        "/usr/local/lib/python3.12/site-packages/",
        "~/.cache/dms-serve/tokenizer-qwen3/tokenizer.json",
        "https://example.com/\u8def\u5f84/\u00e9t\u00e9?q=%E2%9C%93",
        "git@github.com:owner/repo.git",
        "192.168.0.1:443 and [::1]:50051",
    ]


def _emoji_cases():
    return [
        "\U0001F600",
        "\U0001F600\U0001F601\U0001F602\U0001F923",
        "I \u2764\ufe0f this",
        "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 family",
        "\U0001F469\u200d\U0001F4BB coder \U0001F9D1\u200d\U0001F680 astronaut",
        "\U0001F3F3\ufe0f\u200d\U0001F308 rainbow flag",
        "\U0001F1FA\U0001F1F8\U0001F1EF\U0001F1F5\U0001F1E9\U0001F1EA\U0001F1EB\U0001F1F7 flags",
        "\U0001F1FA single regional indicator",
        "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F England",
        "\U0001F44D\U0001F3FB\U0001F44D\U0001F3FC\U0001F44D\U0001F3FD\U0001F44D\U0001F3FE\U0001F44D\U0001F3FF",
        "\U0001F469\U0001F3FD\u200d\U0001F91D\u200d\U0001F468\U0001F3FF",
        "1\ufe0f\u20e3 #\ufe0f\u20e3 *\ufe0f\u20e3",
        "\u263a \u263a\ufe0e \u263a\ufe0f",
        "emoji\U0001F680between\U0001F30Dwords",
        "\U0001F9EC\U0001FAE0\U0001FA77 newer emoji",
        "\u2728\u2728\u2728 sparkles",
        ":-) :) ;-) :D <3 \u00af\\_(\u30c4)_/\u00af",
    ]


def _script_cases():
    return [
        "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002",
        "\u7e41\u9ad4\u4e2d\u6587\u8207\u7c21\u9ad4\u4e2d\u6587\u7684\u5340\u5225",
        "\u673a\u5668\u5b66\u4e60\u662f\u4eba\u5de5\u667a\u80fd\u7684\u4e00\u4e2a\u5206\u652f\u3002Machine learning \u662f AI \u7684\u5206\u652f\u3002",
        "\U00020000\U0002A6D6 CJK extension B",
        "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\uff01\u79c1\u306f\u5b66\u751f\u3067\u3059\u3002",
        "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3068\u6f22\u5b57\u304c\u6df7\u3056\u3063\u305f\u6587",
        "\uff8a\uff9d\uff76\uff78\uff76\uff80\uff76\uff85 halfwidth katakana",
        "\u30b3\u30fc\u30d2\u30fc\u3092\u98f2\u307f\u307e\u3059\u304b\uff1f",
        "\uc548\ub155\ud558\uc138\uc694, \uc138\uacc4! \ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
        "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af decomposed Hangul jamo",
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0643\u0645 \u0641\u064a \u0627\u0644\u0639\u0627\u0644\u0645 \u0627\u0644\u0639\u0631\u0628\u064a",
        "\u0628\u0650\u0633\u0652\u0645\u0650 \u0627\u0644\u0644\u0651\u064e\u0647\u0650 with harakat",
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd, \u05de\u05d4 \u05e9\u05dc\u05d5\u05de\u05da?",
        "\u05d1\u05bc\u05b0\u05e8\u05b5\u05d0\u05e9\u05b4\u05c1\u05d9\u05ea with niqqud",
        "\u0928\u092e\u0938\u094d\u0924\u0947, \u0906\u092a \u0915\u0948\u0938\u0947 \u0939\u0948\u0902?",
        "\u0939\u093f\u0928\u094d\u0926\u0940 \u092e\u0947\u0902 \u0915\u094d\u0937 \u0924\u094d\u0930 \u091c\u094d\u091e \u0936\u094d\u0930",
        "\u0915\u093c \u0916\u093c \u0917\u093c nukta forms",
        "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e44\u0e21\u0e48\u0e21\u0e35\u0e0a\u0e48\u0e2d\u0e07\u0e27\u0e48\u0e32\u0e07",
        "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430? \u0401\u0436\u0438\u043a \u0438 \u0419\u043e\u0434",
        "\u0423\u043a\u0440\u0430\u0457\u043d\u0441\u044c\u043a\u0430 \u043c\u043e\u0432\u0430: \u0491\u0454\u0456\u0457",
        "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5! \u0391\u0392\u0393\u0394 \u03b1\u03b2\u03b3\u03b4",
        "\u1f08\u03b8\u03ae\u03bd\u03b1\u03b9 polytonic Greek",
        "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0 Georgian",
        "\u0532\u0561\u0580\u0565\u0582 Armenian",
        "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd Tamil",
        "\u09b9\u09cd\u09af\u09be\u09b2\u09cb Bengali",
        "Ti\u1ebfng Vi\u1ec7t c\u00f3 nhi\u1ec1u d\u1ea5u: \u0111\u01b0\u1ee3c, ng\u01b0\u1eddi, ph\u1edf",
        "Stra\u00dfe \u1e9e GROSSES \u00df",
        "\u0130stanbul \u0131\u015f\u0131k I\u0307",
        "\u1230\u120b\u121d Ethiopic",
        "\u1828\u1833\u1829\u1860\u1826\u182d Mongolian",
        "\u0f56\u0f7c\u0f51\u0f0b\u0f61\u0f72\u0f42 Tibetan",
        "\u179f\u17bd\u179f\u17d2\u178f\u17b8 Khmer",
        "\u0644\u0627 \u0627\u0644\u0644\u0647 \ufdf2 \ufefb presentation forms",
        "mixed: English, \u4e2d\u6587, \u65e5\u672c\u8a9e, \ud55c\uad6d\uc5b4, \u0627\u0644\u0639\u0631\u0628\u064a\u0629, \u05e2\u05d1\u05e8\u05d9\u05ea, \u0939\u093f\u0928\u094d\u0926\u0940",
    ]


def _nfc_cases():
    # Each text differs from its NFC form (or tests a form NFC must keep).
    return [
        "cafe\u0301",
        "e\u0301 vs \u00e9",
        "A\u030a vs \u00c5 vs \u212b angstrom sign",
        "\u2126 ohm sign vs \u03a9",
        "\u212a kelvin sign",
        "n\u0303o\u0308u\u0300",
        "a\u0323\u0301 and a\u0301\u0323 (canonical reordering)",
        "\u1e9b\u0323 long s with dots",
        "o\u031b\u0323 Vietnamese o with horn and dot",
        "\u0041\u0308\u0304 A diaeresis macron",
        "\uf900\uf901 CJK compatibility ideographs",
        "\u2000\u2001 en quad / em quad",
        "\u0344 combining greek dialytika tonos",
        "\u0958 Devanagari qa (composition-excluded)",
        "\u00c7a\u0327 cedilla",
        "\ufb01 ligature stays (NFC, not NFKC)",
        "x\u0308\u0332 marks that compose with nothing",
        "\u0301 leading combining mark",
        "\u0915\u093c NFD nukta",
        "Ame\u0301lie Zoe\u0308 Bjo\u0308rk Franc\u0327ois",
        "\u1100\u1161\u11a8",
        "\u304b\u3099 \u30cf\u309a kana voiced marks",
    ]


def _category_cases():
    return [
        "\u2160\u2161\u2162\u2163\u2164\u2165\u2166\u2167\u2168\u2169\u216a\u216b",
        "\u00b2\u00b3\u00b9\u2070\u2074\u2075 superscripts",
        "\u2080\u2081\u2082 subscripts",
        "\uff21\uff22\uff23\uff41\uff42\uff43 fullwidth letters",
        "\U0001d400\U0001d401\U0001d402 math bold letters",
        "\u02b0\u02b2\u02e1 modifier letters",
        "\u00aa\u00ba ordinal indicators",
        "\u2160abc \u2460abc \u00bdabc",
        "a\u2160b\u00b2c\uff11d",
        "\u3021\u3022\u3023 Hangzhou numerals",
        "\U00010107\U00010108 Aegean numbers",
        "\u0bf0\u0bf1 Tamil numbers",
        "\u2155\u215f fractions",
        "letter\u0300mark\u0489enclosing",
        "\u00b5 micro sign vs \u03bc",
        "\u01c5 titlecase digraph \u01c4\u01c6",
        "\u2c00\u2c01 Glagolitic",
        "\u2102\u210d\u2115 double-struck",
        "\u24b6\u24b7 circled letters (So)",
        "\u1d2c\u1d2e phonetic",
    ]


def _zero_width_cases():
    return [
        "\u200bzero\u200bwidth\u200bspace",
        "zero\u200cwidth\u200cnon\u200cjoiner",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 Persian ZWNJ",
        "zwj\u200dbetween",
        "word\u2060joiner",
        "\ufeffBOM at start",
        "soft\u00adhyphen",
        "\u200eLRM \u200fRLM \u202aLRE\u202c",
        "variation\ufe00selector",
        "\u200b",
        "\u200b\u200b\u200b",
        "a\u034fb combining grapheme joiner",
        "\u2062invisible\u2063separator",
    ]


def _control_cases():
    return [
        "\x00",
        "null\x00inside",
        "\x01\x02\x03\x1f",
        "\x7f delete",
        "\x1b[31mred\x1b[0m ANSI",
        "bell\x07",
        "\x80\x9f C1 controls",
        "\ufffd replacement char",
        "\ue000\uf8ff private use",
        "\U0010fffd supplementary private use",
    ]


def _special_token_cases():
    return [
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<think>",
        "</think>",
        "<think></think>",
        "<think>\n\n</think>\n\n",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\nok\n</think>\n\nhello<|im_end|>",
        "before<|endoftext|>after",
        "<|endoftext|><|endoftext|>",
        " <|im_end|> ",
        "\n<|im_start|>\n",
        "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
        "<tool_response>ok</tool_response>",
        "<|vision_start|><|image_pad|><|vision_end|>",
        "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
        "<|box_start|>(1,2)<|box_end|>",
        "<|im_start|",
        "<|im_start",
        "|im_start|>",
        "<|IM_START|>",
        "< |im_start|>",
        "<|im_start |>",
        "<|im_start|>>",
        "<<|im_start|>",
        "<|endoftext|",
        "<|endoftext",
        "<thinK>",
        "<think >",
        "</ think>",
        "<think/>",
        "<thinking>",
        "<|im_sep|>",
        "<|im_start|><|im_end|>",
        "x<think>y</think>z",
        "\u00e9<|im_end|>\u00e9",
        "<|im_start|>\u4f60\u597d<|im_end|>",
    ]


def _long_texts():
    prose = (
        "The history of writing systems is a long one. Early scripts were pictographic; "
        "later they became logographic, syllabic, and finally alphabetic. Each step traded "
        "expressiveness for economy. Today's computers store text as sequences of code points, "
        "and tokenizers cut those sequences into pieces a model can learn from. "
    )
    long_prose = (prose * 14)[:4200]
    code_block = (
        "def attention(q, k, v, mask):\n"
        "    # q: [T, H, D], k/v: [S, H, D]\n"
        "    scores = torch.einsum('thd,shd->hts', q, k) / math.sqrt(q.shape[-1])\n"
        "    scores = scores.masked_fill(~mask, float('-inf'))\n"
        "    return torch.einsum('hts,shd->thd', scores.softmax(-1), v)\n\n"
    )
    long_code = (code_block * 12)[:3500]
    multi = (
        "English text, \u4e2d\u6587\u6587\u672c, \u65e5\u672c\u8a9e\u306e\u6587\u7ae0, "
        "\ud55c\uad6d\uc5b4 \ubb38\uc7a5, \u0627\u0644\u0646\u0635 \u0627\u0644\u0639\u0631\u0628\u064a, "
        "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442, "
        "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac, \u0939\u093f\u0928\u094d\u0926\u0940 \u092a\u093e\u0920, "
        "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22, emoji \U0001F600\U0001F44D\U0001F3FD, numbers 1234567.\n"
    )
    long_multi = (multi * 30)[:3000]
    ws = "word \t\n  " * 10 + "\r\n\r\n" + "  indented line\n" * 20 + "\n\n\n   \t\t  trailing   "
    long_ws = (ws * 6)[:2500]
    return [long_prose, long_code, long_multi, long_ws]


# ---------------------------------------------------------------------------
# Random cases (fixed seed).
# ---------------------------------------------------------------------------

# Old, stable blocks: Unicode property tables of all implementations agree here.
_BLOCKS = [
    (0x0020, 0x007E),  # ASCII printable
    (0x00A0, 0x00FF),  # Latin-1
    (0x0100, 0x024F),  # Latin extended A/B
    (0x0300, 0x036F),  # combining diacritics
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x04FF),  # Cyrillic
    (0x0530, 0x058F),  # Armenian
    (0x0590, 0x05FF),  # Hebrew
    (0x0600, 0x06FF),  # Arabic
    (0x0900, 0x097F),  # Devanagari
    (0x0E00, 0x0E7F),  # Thai
    (0x10A0, 0x10FF),  # Georgian
    (0x1100, 0x11FF),  # Hangul jamo
    (0x1E00, 0x1EFF),  # Latin extended additional
    (0x2000, 0x206F),  # general punctuation
    (0x2150, 0x218F),  # number forms
    (0x2190, 0x21FF),  # arrows
    (0x2200, 0x22FF),  # math operators
    (0x2460, 0x24FF),  # enclosed alphanumerics
    (0x2500, 0x257F),  # box drawing
    (0x3000, 0x303F),  # CJK punctuation
    (0x3040, 0x309F),  # hiragana
    (0x30A0, 0x30FF),  # katakana
    (0x4E00, 0x9FFF),  # CJK unified
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility
    (0xFF00, 0xFFEF),  # half/fullwidth forms
    (0x1F300, 0x1F5FF),  # pictographs
    (0x1F600, 0x1F64F),  # emoticons
]
_WS = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", " \n"]
_ASCII_WORDS = ["the", "of", "and", "a", "to", "in", "is", "you", "that", "it", "he",
                "was", "for", "on", "are", "as", "with", "his", "they", "I", "at", "be",
                "this", "have", "from", "or", "one", "had", "by", "word", "but", "not",
                "what", "all", "were", "we", "when", "your", "can", "said", "there",
                "tokenizer", "Unicode", "DMS", "cache", "QWEN", "Model", "GPU"]


def _assigned(cp):
    # Judge by the Unicode 3.2 tables (fixed in every Python) so the corpus does
    # not depend on the Python version, and every picked character is old enough
    # for any implementation's property tables. Emoji postdate 3.2: the emoji
    # blocks used here were complete by Unicode 8, so today's table is stable.
    ch = chr(cp)
    if cp >= 0x1F300:
        return unicodedata.category(ch) == "So"
    return unicodedata.ucd_3_2_0.category(ch) not in ("Cn", "Cs", "Co")


def _random_char(rng):
    lo, hi = rng.choice(_BLOCKS)
    while True:
        cp = rng.randint(lo, hi)
        if _assigned(cp):
            return chr(cp)


def _random_unicode_cases(rng, count):
    cases = []
    for _ in range(count):
        n = rng.randint(1, 60)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.12:
                parts.append(rng.choice(_WS))
            elif r < 0.20:
                parts.append(rng.choice("'sStTdDmMlLvVrReE"))
            else:
                parts.append(_random_char(rng))
        cases.append("".join(parts))
    return cases


def _random_word_cases(rng, count):
    punct = list(".,;:!?-'\"()[]{}") + ["...", "--", "'s", "'LL", "\u2019"]
    cases = []
    for _ in range(count):
        out = []
        for _ in range(rng.randint(3, 40)):
            r = rng.random()
            if r < 0.6:
                w = rng.choice(_ASCII_WORDS)
                if rng.random() < 0.2:
                    w = w.upper()
                out.append(w)
            elif r < 0.75:
                out.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
            elif r < 0.9:
                out.append(rng.choice(punct))
            else:
                out.append(rng.choice(_WS))
            out.append(rng.choice([" ", " ", " ", "", "\n", "  "]))
        cases.append("".join(out))
    return cases


def _random_codepoint_cases(rng, count):
    # Any code point up to U+2FFFF that Unicode 3.2 assigned.
    cases = []
    for _ in range(count):
        n = rng.randint(1, 24)
        chars = []
        while len(chars) < n:
            cp = rng.randint(0x20, 0x2FFFF)
            if 0xD800 <= cp <= 0xDFFF or cp >= 0x1F300 or not _assigned(cp):
                continue
            chars.append(chr(cp))
        cases.append("".join(chars))
    return cases


def text_cases():
    """All text cases, in a fixed order, duplicates removed."""
    rng = random.Random(SEED)
    groups = [
        PROSE, _contraction_cases(), _number_cases(), _whitespace_cases(),
        _punctuation_cases(), _code_cases(), _url_cases(), _emoji_cases(),
        _script_cases(), _nfc_cases(), _category_cases(), _zero_width_cases(),
        _control_cases(), _special_token_cases(), ["", "a", "A", "\u00e9", "\U0001F600"],
        _long_texts(), _random_unicode_cases(rng, 60), _random_word_cases(rng, 30),
        _random_codepoint_cases(rng, 20),
    ]
    seen = set()
    out = []
    for group in groups:
        for text in group:
            if text not in seen:
                seen.add(text)
                out.append(text)
    return out


# ---------------------------------------------------------------------------
# Chat cases: (messages, enable_thinking, add_generation_prompt).
# ---------------------------------------------------------------------------

def chat_cases():
    u = lambda c: {"role": "user", "content": c}
    a = lambda c: {"role": "assistant", "content": c}
    s = lambda c: {"role": "system", "content": c}

    conversations = [
        [u("What is 2+2?")],
        [s("You are a helpful assistant."), u("Hello!")],
        [s("Answer briefly."), u("Capital of France?"), a("Paris."), u("And of Germany?")],
        [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke."), a("Why did the chicken cross the road?"),
         u("Why?")],
        # Thinking blocks in assistant turns before the last user message are stripped.
        [u("Hi"), a("<think>\nThe user greets me.\n</think>\n\nHello!"), u("What's up?")],
        [s("Be terse."), u("1+1?"), a("<think>one plus one</think>2"), u("2+2?"),
         a("<think>\n\nadd\n\n</think>\n\n\n4"), u("Thanks")],
        # Assistant turn after the last user message: its thinking is kept.
        [u("Solve x+1=3."), a("<think>\nSubtract 1.\n</think>\n\nx = 2.")],
        [u("Solve x+1=3."), a("x = 2.")],
        [u("Q1"), a("A1"), u("Q2"), a("<think>\nr2\n</think>\n\nA2")],
        # reasoning_content field instead of inline <think>.
        [u("Why is the sky blue?"),
         {"role": "assistant", "content": "Rayleigh scattering.",
          "reasoning_content": "Short wavelengths scatter more."}],
        [u("Q"), {"role": "assistant", "content": "A", "reasoning_content": "\nthought\n"}, u("Q again")],
        [u("Q"), {"role": "assistant", "content": "<think>inline</think>A", "reasoning_content": "field wins"}],
        [u("Q"), {"role": "assistant", "content": "A", "reasoning_content": ""}],
        [u("Q"), {"role": "assistant", "content": "<think>\ninline\n</think>\n\nA", "reasoning_content": None}],
        # Two assistant turns after the last user message.
        [u("Count."), a("<think>c1</think>one"), a("<think>c2</think>two")],
        [u("Count."), a("one"), a("<think>c2</think>two")],
        # Empty contents.
        [u("")],
        [s(""), u("hi")],
        [u("hi"), a(""), u("again")],
        [u("hi"), a("")],
        # Unicode and special-looking content.
        [u("\u591a\u8bed\u8a00 \u0442\u0435\u0441\u0442 \U0001F600 caf\u00e9")],
        [s("\u4f60\u662f\u4e00\u4e2a\u52a9\u624b\u3002"), u("\u3053\u3093\u306b\u3061\u306f\uff01"),
         a("\uc548\ub155\ud558\uc138\uc694!"), u("\u0645\u0631\u062d\u0628\u0627")],
        [u("Explain <think> tags and <|im_end|> tokens.")],
        [u("Line one\nLine two\n\n  indented\r\nCRLF\ttab")],
        [u("  leading and trailing spaces  ")],
        # A system message that is not first is rendered like a user turn.
        [u("hi"), s("New instructions."), u("ok")],
        [s("S1"), s("S2"), u("hi")],
        # Long multi-turn conversation.
        [s("You are a math tutor.")] + [m for i in range(6) for m in (
            u(f"What is {i} squared?"), a(f"<think>{i}*{i}</think>{i * i}"))] + [u("Done?")],
        [u("Write code."), a("```python\nprint('hi')\n```"), u("In C++?")],
        [u("a" * 500)],
    ]
    cases = []
    for conv in conversations:
        for thinking in (False, True):
            cases.append((conv, thinking, True))
    # add_generation_prompt false: the conversation is rendered as-is.
    for conv in conversations[:12]:
        cases.append((conv, True, False))
    return cases
