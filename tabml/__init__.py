"""tabml: the shared code of the tabular training pipeline, one subpackage per concern.

Layers, lowest first; a package imports only from the packages listed for it (tests/test_layering.py checks
this from the import graph, docs/architecture.md draws it):

    core           params, errors and exit codes, the stage shell, env, files    (imports nothing of tabml)
    data           reading tables, column kinds, target, preprocessing, splits    core
    validation     reference suite, GX checks, drift, quarantine, Data Docs       core, data
    training       network, LightningModule, data in memory, resume, DDP          core, data
    tracking       W&B runs (offline by default), sync, model-registry links      core
    evaluation     metrics, baselines, slices, plots, bootstrap, scoring rows     core, data, training
    registry       packages, index, gate, champion, lineage, GTO, reproduce       + evaluation, tracking
    predict        batch scoring of files with a registered model                 + registry, validation
    orchestration  DVC stage runner, flow settings, locks, notify, publish        + registry
    report         the experiment comparison page                                 + registry
    serve          the online scoring server, hot reload, micro-batching          + predict
    monitor        drift and live performance of what was served; retraining      + predict

`tasks/` holds one module per dvc.yaml stage; `flows/` composes them as Prefect flows.
"""
