"""Benchmark: faiss k-NN helper against a brute-force torch matmul + topk, same data and run.

Prints the time of each and their ratio; nothing here is asserted.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from marginkit.shared.faiss_index import build_index, knn_search


def _best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for count in (2_000, 20_000):
        data = rng.normal(size=(count, 64)).astype(np.float32)
        tensor = torch.nn.functional.normalize(torch.from_numpy(data), dim=1)

        def torch_search(tensor=tensor):
            for start in range(0, len(tensor), 4096):
                torch.topk(tensor[start : start + 4096] @ tensor.T, k=10, dim=1)

        index = build_index(data, metric="cosine", use_gpu=False)
        faiss_time = _best_of(3, lambda index=index, data=data: knn_search(index, data, k=10))
        torch_time = _best_of(3, torch_search)
        rows.append((count, faiss_time, torch_time, torch_time / faiss_time))

    print(f"{'rows':>8} {'faiss s':>9} {'torch s':>9} {'torch/faiss':>12}")
    for count, faiss_time, torch_time, ratio in rows:
        print(f"{count:>8} {faiss_time:>9.3f} {torch_time:>9.3f} {ratio:>12.2f}")


if __name__ == "__main__":
    main()
