"""Options assets: end-of-day chains with our IV and Greeks, the fitted volatility surface,
their quality gates, the options job and its nightly schedule."""
