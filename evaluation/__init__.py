"""Offline evaluation harness (paper 000 §4): protocols, model runs over seeds, tables and plots.

``protocols`` (split + which items count), ``harness`` (fit / rank / mean ± 95% CI),
``proposed`` (the proposed system's recall stage and the fusion-reranker hook), ``features``
(VBPR item features), ``studies`` (Table 2, Table 3, Fig. 2), ``report`` (markdown, JSON, PNG);
``trend`` is paper 002's trend-aware study (sampling, features, simulation, ranking, metrics,
report).
"""

from pathlib import Path

#: Where every study writes its tables and plots unless told otherwise (``--out``).
RESULTS_DIR = Path("docs/results")
