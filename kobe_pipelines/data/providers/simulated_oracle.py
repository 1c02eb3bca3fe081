"""The exact h-session expectation under the simulated market's own equations (`simulated`).

Per symbol the true total log return follows an AR(5) with equal coefficients,

    r_{t+1} = c + u_{t+1} - s * (r_t + r_{t-1} + ... + r_{t-4}),
    c = mu + beta * MARKET_DRIFT,   u ~ N(0, v) independent over sessions,   v = beta^2 * MARKET_VOL^2 + sigma^2,

with s the signal strength. Given everything up to t, the h-session log return
S = r_{t+1} + ... + r_{t+h} is Gaussian:

- mean M: the recursion run forward with every future u set to 0 (known r up to t, forecasts after);
- variance V = v * sum_{n=0}^{h-1} Psi_n^2, where psi_0 = 1, psi_n = -s * (psi_{n-1} + ... + psi_{n-5})
  (terms with a negative index are 0) is the response of r_{t+1+n} to one unit of u_{t+1}, and
  Psi_n = psi_0 + ... + psi_n its sum, the response of S.

The close-to-close simple total return over the h sessions is exp(S) - 1 (dividends reinvested,
splits neutral), so its expectation is exp(M + V / 2) - 1: the oracle score. It ignores only the
tick rounding of the published prices. With h = 1 it is exp(c + s * signal_t + v / 2) - 1, an
increasing function of the planted signal for one symbol; across symbols c and v differ.
"""

from __future__ import annotations

import numpy as np

LAGS = 5  # the mean reversion sums the last five returns


def response_sums(strength: float, horizon: int) -> np.ndarray:
    """Psi_0 .. Psi_{horizon-1}: the response of the h-session log return to each future shock."""
    psi = np.zeros(horizon)
    for n in range(horizon):
        psi[n] = 1.0 if n == 0 else -strength * psi[max(0, n - LAGS):n].sum()
    return np.cumsum(psi)


def expected_total_return(last_returns: np.ndarray, drift: np.ndarray, variance: np.ndarray, strength: float,
                          horizon: int) -> np.ndarray:
    """E[exp(r_{t+1} + ... + r_{t+h}) - 1] per row.

    `last_returns`: (rows, 5) true log returns r_{t-4} .. r_t, oldest first; `drift` c and
    `variance` v per row (daily log units); `strength` s; `horizon` h in sessions (>= 1)."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session (got {horizon})")
    window = np.array(last_returns, dtype="float64", copy=True)
    if window.ndim != 2 or window.shape[1] != LAGS:
        raise ValueError(f"last_returns must have shape (rows, {LAGS}) (got {window.shape})")
    mean = np.zeros(len(window))
    for _ in range(horizon):
        step = drift - strength * window.sum(axis=1)
        mean += step
        window = np.column_stack([window[:, 1:], step])
    var = variance * float(np.sum(response_sums(strength, horizon) ** 2))
    return np.expm1(mean + var / 2.0)
