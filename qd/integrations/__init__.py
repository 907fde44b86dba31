"""Bridges to other libraries: :mod:`qd.integrations.evotorch` (EvoTorch searchers on the
batched evaluator, and the ``evotorch:<SEARCHER>`` algorithms of ``qd run``)."""
