"""Payments: the provider seam (:mod:`signals.payments.base`), Stripe
(:mod:`signals.payments.stripe_provider`) and the embedded local provider
(:mod:`signals.payments.local`, the default: the demo needs no keys). Which one runs is decided
by :func:`signals.payments.config.make_provider` from the environment."""
