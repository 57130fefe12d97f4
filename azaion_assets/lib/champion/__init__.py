"""The champion's one home: the published pair and its records (``files``), promotion and
rollback (``promotion``), the weights a fine-tuning starts from (``weights``,
``start_weights``), the model card the edge runs by (``card``) and running a shipped model as
the edge does (``edge_predict``). Evaluation judges, training trains, release ships: each asks
this package, and none reaches into another's internals."""
