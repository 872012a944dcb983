from dataclasses import dataclass

from SAMSegmentLib.cache import EmbeddingCache


@dataclass
class Blob:
    nbytes: int


def test_least_recently_used_entries_are_evicted_to_fit_the_budget():
    cache = EmbeddingCache(budget_bytes=300)
    for key in "abc":
        cache.put(key, Blob(100))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", Blob(100))
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.nbytes == 300 and len(cache) == 3


def test_oversized_entries_are_not_kept_and_replacing_a_key_counts_once():
    cache = EmbeddingCache(budget_bytes=100)
    cache.put("huge", Blob(101))
    assert "huge" not in cache and cache.nbytes == 0
    cache.put("x", Blob(60))
    cache.put("x", Blob(70))
    assert cache.nbytes == 70 and len(cache) == 1


def test_hit_and_miss_counts():
    cache = EmbeddingCache(budget_bytes=10)
    cache.put("k", Blob(1))
    cache.get("k")
    cache.get("missing")
    assert (cache.hits, cache.misses) == (1, 1)
