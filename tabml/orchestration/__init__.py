"""orchestration: how the Prefect flows drive the DVC stages. May import: core, data, validation, evaluation,
registry (their artifact contracts, to summarise a run).

dvc_stages (plan and run one stage through DVC; the stage/flow failure contract), flow_params (what the flow
reads from params.yaml), workspace_lock (one run per workspace), reaper (what a killed flow left
running is stopped), notify (failure notices), publish_run (dvc
push + run branch), summary (the run's Prefect artifact), stage_pool and handover (one stage sent to another work
pool, its inputs and result handed over through a git ref and the DVC remote), local_server and
reports_server (`make server`: Prefect, and the report pages over HTTP for the summary's links).
"""
