"""Many independent fits on a Dask cluster (``pip install 'skgpx[dask]'``).

One large GP over several devices is ``device=[...]`` on the estimator (JAX's sharding);
this package is for many independent GPs: one per window, region or hyperparameter setting,
and scikit-learn's own parallelism (``GridSearchCV``) under joblib's Dask backend.
Dask is imported when a function is called, not with skgpx.
"""

from ._client import dask_client as dask_client
from ._fit_many import fit_many as fit_many, gather_fits as gather_fits, submit_fits as submit_fits
