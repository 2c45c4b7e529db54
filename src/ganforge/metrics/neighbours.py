"""Nearest neighbours in feature space, computed in row chunks so 50k x 50k distances never sit in memory.

Squared distances come from |a|^2 + |b|^2 - 2 a.b (one matmul per chunk), clamped at 0 against rounding. A chunk
is sized to hold about CHUNK_ELEMENTS distances (64 MiB in float32), whatever the number of reference rows. The k
distances `nearest` returns are recomputed from the differences, so an exact copy is at distance 0.
"""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 24


def rows_per_chunk(n_columns: int, budget: int = CHUNK_ELEMENTS) -> int:
    return max(1, budget // max(1, n_columns))


def squared_distances(a: torch.Tensor, b: torch.Tensor, b_norms: torch.Tensor | None = None) -> torch.Tensor:
    """[m, d] x [n, d] -> [m, n] squared Euclidean distances."""
    if b_norms is None:
        b_norms = (b * b).sum(dim=1)
    return ((a * a).sum(dim=1, keepdim=True) + b_norms[None, :] - 2 * a @ b.T).clamp_min_(0)


def nearest(queries: torch.Tensor, refs: torch.Tensor, k: int = 1, *, exclude_self: bool = False,
            device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances [Nq, k], indices [Nq, k]) of each query's k nearest refs, nearest first, on the CPU.

    exclude_self: query i is ref i (queries are the first rows of refs) and is not its own neighbour.
    """
    if exclude_self and queries.shape[0] > refs.shape[0]:
        raise ValueError("exclude_self needs the queries to be the first rows of the refs")
    if k > refs.shape[0] - int(exclude_self):
        raise ValueError(f"{k} neighbours asked of {refs.shape[0]} reference points")
    device = torch.device(device) if device is not None else refs.device
    refs_d = refs.to(device, torch.float32)
    ref_norms = (refs_d * refs_d).sum(dim=1)
    out_d, out_i = [], []
    step = rows_per_chunk(max(refs.shape[0], k * refs.shape[1]))  # both [step, N] and [step, k, D] fit
    for start in range(0, queries.shape[0], step):
        d2 = squared_distances(queries[start : start + step].to(device, torch.float32), refs_d, ref_norms)
        if exclude_self:
            rows = torch.arange(d2.shape[0], device=device)
            d2[rows, rows + start] = float("inf")
        _, indices = d2.topk(k, dim=1, largest=False)
        # The expanded form loses digits when |a|^2 ~ |b|^2 >> |a - b|^2 (an exact copy comes out at ~1e-2, not 0):
        # recompute the k chosen distances directly from the differences.
        chunk = queries[start : start + step].to(device, torch.float32)
        exact = (chunk[:, None, :] - refs_d[indices]).norm(dim=2)
        exact, order = exact.sort(dim=1)
        out_d.append(exact.cpu())
        out_i.append(indices.gather(1, order).cpu())
    return torch.cat(out_d), torch.cat(out_i)


def within_any_ball(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """bool [Nq]: is each query within radius_j of some centre j (|q - c_j| <= r_j)?"""
    device = torch.device(device) if device is not None else centres.device
    centres_d = centres.to(device, torch.float32)
    centre_norms = (centres_d * centres_d).sum(dim=1)
    r2 = radii.to(device, torch.float32).square()
    inside = []
    step = rows_per_chunk(centres.shape[0])
    for start in range(0, queries.shape[0], step):
        d2 = squared_distances(queries[start : start + step].to(device, torch.float32), centres_d, centre_norms)
        inside.append((d2 <= r2[None, :]).any(dim=1).cpu())
    return torch.cat(inside)
