"""training: the network and how it is fitted. May import: core, data.

model (the nn.Modules, no Lightning), tabm (the default network: TabM-mini with piecewise-linear embeddings),
model_config (what a network is built from), system (the LightningModule: loss, metrics, optimiser),
datamodule (splits as tensors, sharded by rank), history (epoch curves), resume (crash-safe checkpoints),
checkpoints (atomic checkpoint saves, unreadable ones set aside),
distributed (accelerator, precision, DDP, CPU threads), trained_model (the model-folder artifact: weights,
config, history, run info). Lightning is imported only by system, datamodule, history, resume and checkpoints.
"""
