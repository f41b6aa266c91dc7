"""Evaluation through EleutherAI's lm-evaluation-harness (``pip install -e ".[eval]"``), offline.

    zoo eval CKPT --tasks zoo_cloze,zoo_next_sentence          # zoo.commands.eval
    lm_eval --model zoo --model_args checkpoint=CKPT ...       # after python -m zoo.eval.plugin install

| module | what | needs lm-eval |
|---|---|---|
| ``zoo.eval.scoring`` | ``Scorer``: log-likelihoods per family (masked LM: pseudo-log-likelihood), generation | no |
| ``zoo.eval.tasks`` | the local tasks (data in ``zoo/eval/data``), their YAML directory | no |
| ``zoo.eval.harness`` | ``ZooLM``, lm-eval's model ``zoo`` | yes |
| ``zoo.eval.run`` | ``evaluate``: task checks, lm-eval's ``simple_evaluate``, results file, table | at call time |
| ``zoo.eval.callback`` | ``DownstreamEval``: task scores every N steps of ``zoo fit`` | at call time |
| ``zoo.eval.plugin`` | the import hook behind ``lm_eval --model zoo`` | no |
"""
