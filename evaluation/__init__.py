"""Offline evaluation harness (paper 000 §4): protocols, model runs over seeds, tables and plots.

``protocols`` (split + which items count), ``harness`` (fit / rank / mean ± 95% CI),
``proposed`` (the proposed system's recall stage and the fusion-reranker hook), ``features``
(VBPR item features), ``studies`` (Table 2, Table 3, Fig. 2), ``report`` (markdown, JSON, PNG).
"""
