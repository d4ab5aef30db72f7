"""Build the policy model and its tokenizer: the embedded tiny default, a hub preset, or a local path.

Nothing here downloads anything unless the user picked a hub preset.
"""

from __future__ import annotations

import string
from pathlib import Path

from harness.config.groups import Model

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
# Characters the embedded tasks use; every character is one token so token-level rewards map 1:1 to characters.
DEFAULT_CHARACTERS = string.digits + string.ascii_lowercase + "+=>:| "


def build_char_tokenizer(characters: str = DEFAULT_CHARACTERS):
    """A character-level fast tokenizer built in code; saves and reloads with `AutoTokenizer`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS.values())}
    for char in characters:
        vocab[char] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()  # join characters back without spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, padding_side="left", **SPECIAL_TOKENS)
    return tokenizer


def build_tiny_model(tokenizer, cfg: Model):
    """A small Qwen2-style causal LM with random init (seeded), sized by `cfg`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(cfg.init_seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def build_tokenizer(cfg: Model):
    if cfg.source == "tiny":
        return build_char_tokenizer(cfg.characters)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(cfg: Model, tokenizer, output_dir: Path):
    """The policy, loaded from a path so that a reference model (beta > 0) can be reloaded the way trl does it.

    The tiny model is written to `output_dir/initial_model` (with its tokenizer) first; that directory is also a
    valid `model=local model.path=...`.
    """
    from transformers import AutoModelForCausalLM

    if cfg.source != "tiny":
        return AutoModelForCausalLM.from_pretrained(cfg.path, dtype=cfg.dtype)
    path = output_dir / "initial_model"
    if not (path / "config.json").exists():
        build_tiny_model(tokenizer, cfg).save_pretrained(path)
        tokenizer.save_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path)
