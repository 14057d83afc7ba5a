"""Training ViTPose / ViTPose+ (`vitpose_plus.training`).

Modules: `config` (YAML run configs), `transforms` (the original top-down augmentation and targets), `data_pipeline`
(mixed sampler, collator), `train` (the Accelerate loop), `trainer_utils` (transformers.Trainer integration), `plots`.
"""
