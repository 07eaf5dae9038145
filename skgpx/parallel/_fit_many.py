"""Many independent fits side by side on a Dask cluster: one model per window, region or setting.

Each fit is one Dask task holding its own data (not scattered ahead), so a task whose
worker dies can be rerun from the scheduler alone: Dask reschedules tasks of a lost
worker (up to its ``distributed.scheduler.allowed-failures`` setting, default 3) and reruns a
task that raised up to ``retries`` times. A fitted estimator travels back pickled
(``ScalableGPRegressor.__getstate__`` stores its arrays as NumPy), and predicts anywhere.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence

from sklearn.base import clone

from ._client import dask_client

__all__ = ["fit_many", "submit_fits", "gather_fits"]


def _fit_one(estimator, params, X, y):
    est = clone(estimator)
    if params:
        est.set_params(**params)
    return est.fit(X, y)


def _labelled(datasets, params):
    """``(labels, pairs, settings, as_mapping)`` with the arguments checked."""
    as_mapping = isinstance(datasets, Mapping)
    if as_mapping:
        labels, pairs = list(datasets.keys()), list(datasets.values())
    elif isinstance(datasets, Sequence) or hasattr(datasets, "__iter__"):
        pairs = list(datasets)
        labels = list(range(len(pairs)))
    else:
        raise TypeError(f"`datasets` must be a sequence or a mapping of (X, y) pairs, got {type(datasets).__name__}.")
    for label, pair in zip(labels, pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(
                f"`datasets[{label!r}]` must be an (X, y) pair, got {type(pair).__name__}"
                + (f" of length {len(pair)}" if hasattr(pair, "__len__") else "")
                + "; pass [(X_0, y_0), (X_1, y_1), ...] or {name: (X, y)}."
            )
    if params is None or isinstance(params, Mapping) and not as_mapping:
        settings = [dict(params or {})] * len(pairs)
    elif as_mapping and isinstance(params, Mapping) and set(params) == set(labels):
        settings = [dict(params[k]) for k in labels]
    elif as_mapping and isinstance(params, Mapping):
        settings = [dict(params)] * len(pairs)  # one setting for every dataset
    else:
        settings = [dict(p) for p in params]
        if len(settings) != len(pairs):
            raise ValueError(
                f"`params` has {len(settings)} settings for {len(pairs)} datasets; give one dict per dataset "
                "(repeat a dataset to fit it under several settings), or one dict for all."
            )
    return labels, pairs, settings, as_mapping


def submit_fits(client, estimator, datasets, *, params=None, retries=2):
    """Submit one fit per dataset to ``client`` without waiting; see :func:`fit_many`.

    **Returns:** the futures, a list (or a dict with the keys of ``datasets``), to pass to
    :func:`gather_fits` or to use with ``distributed.wait`` / ``as_completed``.
    """
    labels, pairs, settings, as_mapping = _labelled(datasets, params)
    run = uuid.uuid4().hex[:8]
    futures = [
        client.submit(_fit_one, estimator, setting, X, y, retries=retries, pure=False,
                      key=f"skgpx-fit-{label}-{run}")
        for label, (X, y), setting in zip(labels, pairs, settings)
    ]
    return dict(zip(labels, futures)) if as_mapping else futures


def gather_fits(futures, *, verbose=0):
    """Wait for the futures of :func:`submit_fits` and return the fitted estimators in order.

    With ``verbose``, one line per finished fit (how many are done, which one, elapsed time).
    A fit that failed after its retries raises ``RuntimeError`` naming its dataset.
    """
    from distributed import as_completed

    as_mapping = isinstance(futures, Mapping)
    labelled = list(futures.items()) if as_mapping else list(enumerate(futures))
    label_of = {f.key: label for label, f in labelled}
    t0, done = time.perf_counter(), 0
    for future in as_completed([f for _, f in labelled]):
        done += 1
        label = label_of[future.key]
        if future.status == "error":
            raise RuntimeError(f"fit_many: the fit of dataset {label!r} failed ({future.exception()!r}).") \
                from future.exception()
        if verbose:
            print(f"[skgpx] fit_many: {done}/{len(labelled)} fitted (dataset {label!r}), "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
    results = [f.result() for _, f in labelled]
    return dict(zip([k for k, _ in labelled], results)) if as_mapping else results


def fit_many(estimator, datasets, *, params=None, client=None, retries=2, verbose=0):
    """Fit a clone of ``estimator`` on each dataset, side by side on a Dask cluster.

    The serial loop ``[clone(estimator).set_params(**p).fit(X, y) for ...]``, with each fit a
    Dask task: one model per window (the daily maps of a time series), per region, or per
    hyperparameter setting (repeat the dataset, vary ``params``). Same results as the loop
    (each fit is the same computation; set ``random_state`` for the stochastic solvers).

    **Arguments:**

    - ``estimator``: an unfitted scikit-learn estimator (e.g. ``ScalableGPRegressor``), cloned per fit.
    - ``datasets``: a sequence of ``(X, y)`` pairs, or a mapping ``{name: (X, y)}``.
    - ``params``: None; one dict of ``set_params`` values for every fit; one dict per dataset
      (a sequence, or a mapping with the keys of ``datasets``).
    - ``client``: None (a ``LocalCluster`` of processes for this call), a scheduler address, or
      a ``distributed.Client`` (see :func:`~skgpx.parallel.dask_client`).
    - ``retries``: how often a fit that raised is rerun (a worker that dies is rescheduled by
      Dask regardless, up to ``distributed.scheduler.allowed-failures``).
    - ``verbose``: one progress line per finished fit.

    **Returns:** the fitted estimators, a list in the order of ``datasets`` (a dict for a mapping).
    """
    with dask_client(client) as c:
        futures = submit_fits(c, estimator, datasets, params=params, retries=retries)
        try:
            return gather_fits(futures, verbose=verbose)
        finally:
            c.cancel(list(futures.values()) if isinstance(futures, Mapping) else futures)
