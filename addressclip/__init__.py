"""AddressCLIP (ECCV 2024): align street-level images with address text; predict the closest address.

Command-line entry points::

    python -m addressclip.train    [--out RUN_DIR] [flags | --config FILE.yaml]   # stage one
    python -m addressclip.evaluate --run RUN_DIR [--out DIR]                      # SSA / SA vs zero-shot
    python -m addressclip.export   --run RUN_DIR [--out DIR]                      # HF CLIPVisionModel
    python -m addressclip.ablation RUNS_DIR                                       # loss-ablation table
    python -m addressclip.calibrate --run RUN_DIR [--other-data DIR]             # temperature, open set
    python -m addressclip.predict  --model RUN_OR_FULL IMAGES_OR_DIR [--out F]    # addresses of photos
    python -m addressclip.export   --run RUN_DIR --full                          # HF CLIPModel, both towers

Modules, one concern each: ``config`` (dataclasses, flags, YAML, model-dependent defaults), ``model``
(open_clip creation/loading, the registered tiny config in ``model_configs/``), ``losses`` (the
three losses and their decisions), ``data`` (datasets, transforms, batch sampler), ``distributed``
(torchrun environment, gathers with gradient), ``scheduler`` (warm-up + cosine), ``precision``,
``checkpoint`` (atomic, weights_only-safe), ``train``, ``evaluate``, ``export`` (vision tower) and
``export_full`` (CLIPModel), ``ablation``, ``predict`` (:class:`~addressclip.predict.AddressPredictor`),
``calibration`` (temperature, ECE, threshold), ``open_set`` (scores of how much a photo looks like
the trained city, stored as safetensors) and ``calibrate`` (fits and measures them).

Decisions on points the paper leaves open are documented where they are implemented: losses and
their reduction in :mod:`addressclip.losses`, text and pixel preprocessing in :mod:`addressclip.data`,
metrics and the zero-shot baseline in :mod:`addressclip.evaluate`, optimizer and schedule defaults in
:mod:`addressclip.config`, the HF export mapping in :mod:`addressclip.export`.
"""
