"""Hugging Face interop: BERT, GPT-2, GPT-NeoX, LLaMA, Mistral, Mixtral, Qwen3, Gemma 2 and T5 weights
in and out of zoo models.

    from_hf(model_or_path)            transformers model or save_pretrained directory -> zoo model
    to_hf(zoo_model)                  zoo model -> transformers model with the same weights
    save_pretrained(zoo_model, dir)   zoo model -> directory that AutoModelFor*.from_pretrained loads
    save_hf_tokenizer(tokenizer, dir, shape=..., model_max_length=...)
                                      zoo tokenizer -> tokenizer.json etc. that AutoTokenizer loads

Each architecture is two config translations and a table of weight names, in a module of its own
(``zoo/hf/<model_type>.py``): the computation is the zoo's own blocks, so equal logits prove the
blocks against an independent implementation.

| Hugging Face class           | module     | zoo family (``zoo.models.registry``) and config           |
|------------------------------|------------|-----------------------------------------------------------|
| `BertForMaskedLM`            | `bert.py`  | `bert`: BERT defaults, `type_vocab_size` segment embeddings |
| `GPT2LMHeadModel`            | `gpt2.py`  | `gpt`: learned positions, pre-norm LayerNorm, biases      |
| `GPTNeoXForCausalLM`         | `gpt_neox.py` | `gpt`: rotary (partial), LayerNorm, parallel residual  |
| `LlamaForCausalLM`           | `llama.py` | `llama`: rotary, RMSNorm, gated FFN (swiglu), GQA         |
| `Qwen3ForCausalLM`           | `qwen3.py` | `llama` + `qk_norm="rmsnorm"` (+ per-layer windows)       |
| `MixtralForCausalLM`         | `mixtral.py` | `llama` + `num_experts`, `experts_per_token` (+ window) |
| `MistralForCausalLM`         | `mistral.py` | `llama` + `sliding_window`                              |
| `Gemma2ForCausalLM`          | `gemma2.py` | `llama` + sandwich `rmsnorm_plus_one`, softcaps, windows |
| `T5ForConditionalGeneration` | `t5.py`    | `t5`: relative bias, RMSNorm, `attention_scale=1.0`       |

Adding an architecture: write ``zoo/hf/<model_type>.py`` ending in ``ARCHITECTURE = Architecture(...)``
(see ``zoo.hf._common``), add it to ``ARCHITECTURES`` below, and name its class in the
``hf_classes`` of its family in ``zoo.models.registry``, which decides the zoo model and config.

Anything one side can express and the other cannot — an HF option the blocks lack, a zoo switch no
HF class has, a missing, extra or mis-shaped tensor — is refused with a one-line ``ValueError``
naming it, never turned into a silently different model. ``transformers`` is imported lazily, so
``import zoo.hf`` works without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.hf import bert, gemma2, gpt2, gpt_neox, llama, mistral, mixtral, qwen3, t5
from zoo.hf._common import Architecture, refuse
from zoo.hf._files import load_hf_config, load_weights, read_config_json
from zoo.hf._state import export_state, fill_tied, import_state, normalise_names
from zoo.hf._tokenizer import export_tokenizer_file, hf_tokenizer, save_hf_tokenizer
from zoo.models.base import ZooModel
from zoo.models.mup import standard_equivalent
from zoo.models.registry import FAMILIES, Family, family_of

__all__ = ["from_hf", "to_hf", "save_pretrained", "SUPPORTED_CLASSES", "ARCHITECTURES", "Architecture",
           "hf_family", "export_architecture", "save_hf_tokenizer", "hf_tokenizer", "export_tokenizer_file"]

# config.json's model_type -> its architecture module's ARCHITECTURE.
ARCHITECTURES: dict[str, Architecture] = {
    "bert": bert.ARCHITECTURE,
    "gemma2": gemma2.ARCHITECTURE,
    "gpt2": gpt2.ARCHITECTURE,
    "gpt_neox": gpt_neox.ARCHITECTURE,
    "llama": llama.ARCHITECTURE,
    "mistral": mistral.ARCHITECTURE,
    "mixtral": mixtral.ARCHITECTURE,
    "qwen3": qwen3.ARCHITECTURE,
    "t5": t5.ARCHITECTURE,
}
SUPPORTED_CLASSES = tuple(a.hf_class for a in ARCHITECTURES.values())
_BY_CLASS = {a.hf_class: a for a in ARCHITECTURES.values()}


def hf_family(hf_class: str) -> Family:
    """The zoo family whose ``hf_classes`` name ``hf_class`` (exactly one must)."""
    families = [f for f in FAMILIES.values() if hf_class in f.hf_classes]
    if len(families) != 1:  # a registry edit gone wrong, not a user error
        raise RuntimeError(f"zoo.models.registry: {hf_class} is named by {len(families)} families; it needs one")
    return families[0]


def _architecture(hf_class: str) -> Architecture:
    if hf_class not in _BY_CLASS:  # a registry edit gone wrong, not a user error
        raise RuntimeError(f"zoo.models.registry names {hf_class}, which has no module in zoo.hf")
    return _BY_CLASS[hf_class]


def export_architecture(model: Any) -> Architecture:
    """The HF class a zoo model exports to: among those the registry lists for its model class
    (GPT: GPT-2 and LLaMA), the one whose ``export_when`` the config meets most specifically.

    Raises:
        ValueError: (one line) not a zoo model, or a config none of those classes takes.
    """
    try:
        base = family_of(model)
    except ValueError:
        base = None
    if base is None or not isinstance(model, base.model_class):
        names = [f.model_class.__name__ for f in FAMILIES.values() if not f.preset]
        raise ValueError(f"to_hf takes a zoo {', '.join(names[:-1])} or {names[-1]} model, got {type(model).__name__}")
    name, config = type(model).__name__, model.config
    candidates = [_architecture(c) for f in FAMILIES.values() if f.model_class is base.model_class
                  for c in f.hf_classes]
    if not candidates:
        raise ValueError(f"zoo {name}: no Hugging Face class takes a zoo {base.name} model")
    taken = [a for a in candidates if a.takes(config)]
    if not taken:
        # Name only the general classes: a specialised one (Mistral: LLaMA's conditions and a window)
        # is never taken without its general class, so it fails the same conditions and adds nothing.
        general = [a for a in candidates
                   if not any(set(b.export_when.items()) < set(a.export_when.items()) for b in candidates)]
        fields = dict.fromkeys(field for a in general for field in a.export_when)
        values = ", ".join(f"{field}={getattr(config, field)!r}" for field in fields)
        needs = "; ".join(f"{a.hf_class} needs {a.export_needs()}" for a in general)
        raise ValueError(f"zoo {name}: {values} cannot be exported: {needs}")
    return max(taken, key=lambda a: len(a.export_when))  # ties: the first in registry order


def _read_directory(path: str | os.PathLike) -> tuple[Architecture, Any, dict[str, torch.Tensor]]:
    directory = Path(path)
    raw = read_config_json(directory)
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if model_type not in ARCHITECTURES:
        raise ValueError(f"{directory / 'config.json'}: model_type={model_type!r} is not supported; "
                         f"supported: {sorted(ARCHITECTURES)}")
    arch = ARCHITECTURES[model_type]
    return arch, load_hf_config(directory, arch.config_class), load_weights(directory)


def from_hf(model_or_path: Any) -> ZooModel:
    """The zoo model equivalent to a Hugging Face one, weights included.

    Args:
        model_or_path: An instance of one of ``SUPPORTED_CLASSES`` (``BertForMaskedLM``,
            ``GPT2LMHeadModel``, ``GPTNeoXForCausalLM``, ``LlamaForCausalLM``, ``MistralForCausalLM``,
            ``MixtralForCausalLM``, ``Qwen3ForCausalLM``, ``Gemma2ForCausalLM``,
            ``T5ForConditionalGeneration``), or a local directory written by ``save_pretrained``
            (``config.json`` plus safetensors or ``.bin`` weights). Nothing is downloaded.

    Returns:
        ``zoo.models.BERT``, ``GPT`` (the causal LMs) or ``T5`` with its config derived from the HF
        config, in float32 (torch's default dtype), in eval mode on the CPU for a directory and in
        the instance's mode and on its device otherwise.

    Raises:
        ValueError: (one line) an unsupported class or ``model_type``, an HF option the zoo cannot
            express, or a missing, unexpected or mis-shaped tensor.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        source = str(model_or_path)
        arch, hf_config, state = _read_directory(model_or_path)
        training, device = False, torch.device("cpu")
    else:
        name = type(model_or_path).__name__
        if name not in _BY_CLASS or not isinstance(model_or_path, nn.Module):
            raise ValueError(f"from_hf: {name} is not supported; it takes {', '.join(SUPPORTED_CLASSES)} "
                             "or a save_pretrained directory")
        arch = _BY_CLASS[name]
        source, hf_config, training = name, model_or_path.config, model_or_path.training
        state = dict(model_or_path.state_dict())
        device = next(model_or_path.parameters()).device
    family = hf_family(arch.hf_class)
    state = normalise_names(arch, state)
    config = family.make_config(**arch.zoo_config(hf_config, state))
    if arch.unfuse is not None:
        state = arch.unfuse(config, state)
    model = family.model_class(config)
    model.load_state_dict(import_state(arch, config, state, model, source))
    return model.to(device).train(training)


def to_hf(model: ZooModel) -> Any:
    """The Hugging Face model equivalent to a zoo one, weights included.

    The class follows the zoo family and config: ``BERT`` -> ``BertForMaskedLM``; ``GPT`` with learned
    positions -> ``GPT2LMHeadModel``, with rotary positions -> ``LlamaForCausalLM``, or the class of
    its switch: LayerNorm -> ``GPTNeoXForCausalLM``, ``qk_norm`` -> ``Qwen3ForCausalLM``,
    ``num_experts`` -> ``MixtralForCausalLM``, ``sliding_window`` -> ``MistralForCausalLM``,
    ``norm="rmsnorm_plus_one"`` -> ``Gemma2ForCausalLM``; ``T5`` ->
    ``T5ForConditionalGeneration``. The result has the zoo model's dtype, device and train/eval mode.
    A μP model (``parametrization: mup``) is exported as its standard equivalent
    (``zoo.models.mup.standard_equivalent``): its multipliers folded into the weights, a tied head
    untied when the output multiplier is not 1, equal logits.

    Raises:
        ValueError: (one line) a zoo config that class cannot express exactly, naming the field.
    """
    import transformers

    model = standard_equivalent(model)
    arch = export_architecture(model)
    config = model.config
    if config.resolved_scale_embedding and not arch.scales_embedding:
        raise refuse(f"zoo {type(model).__name__} -> {arch.hf_class}", "scale_embedding", True,
                     "cannot be exported: its token embeddings are not scaled by sqrt(embed_dim)")
    hf = getattr(transformers, arch.hf_class)(arch.hf_config(config))
    head = hf.get_output_embeddings().weight
    if not config.tie_embeddings and head is hf.get_input_embeddings().weight:
        # transformers 5 ties T5's head whatever the config says: give it its own tensor, as
        # from_pretrained does for a checkpoint whose head differs from the embedding.
        hf.get_output_embeddings().weight = nn.Parameter(head.detach().clone())
        getattr(hf, "all_tied_weights_keys", {}).pop(arch.head, None)
    state = export_state(arch, config, model.state_dict())
    if arch.fuse is not None:
        state = arch.fuse(config, state)
    fill_tied(hf, state)
    missing = sorted(set(hf.state_dict()) - set(state))
    if missing:  # a gap in the architecture's weight table, not a user error
        raise RuntimeError(f"zoo.hf: no zoo tensor for {missing} of {arch.hf_class}")
    hf.load_state_dict(state, strict=True)
    reference = next(model.parameters())
    return hf.to(device=reference.device, dtype=reference.dtype).train(model.training)


def save_pretrained(model: ZooModel, directory: str | os.PathLike, **kwargs: Any) -> Any:
    """Write ``to_hf(model)`` to ``directory`` (``config.json`` + ``model.safetensors``), loadable with
    ``AutoModelForMaskedLM`` / ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM.from_pretrained``.
    Keyword arguments go to transformers' ``save_pretrained``. Returns the Hugging Face model."""
    hf = to_hf(model)
    hf.save_pretrained(str(directory), **kwargs)
    return hf
