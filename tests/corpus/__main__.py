"""python tests/corpus: one line per class of the corpus (documents, operations, checks, BSON size)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import corpus  # noqa: E402

rows = corpus.stats(corpus.generate(include_slow=True))
for name, documents, ops, checks, size in rows:
    print(f"{name:10} {documents:5} documents {ops:4} operations {checks:3} checks {size / 1e6:8.2f} MB")
print(f"{'total':10} {sum(r[1] for r in rows):5} documents {sum(r[2] for r in rows):4} operations "
      f"{sum(r[3] for r in rows):3} checks")
