"""Reward models from local directories (PRM token reward, sequence RM), token spans on a real BPE tokenizer, and a
chat-template model with conversational prompts trained a few real steps. Every model is built here (random init)."""

import json

import pytest
import torch

from harness.algorithms.token_spans import token_at, token_spans
from harness.tasks.reward_models import GenerativeProcessRewardModel, ProcessRewardModel, SequenceRewardModel
from harness.training.model import build_char_tokenizer
from tests.chat_task import CHAT_TEMPLATE
from tests.conftest import run_cli
from tests.in_process import run_in_process


def tiny_config(tokenizer, **kwargs):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, **kwargs,
    )  # fmt: skip


def save_tiny_classifier(kind: str, path, num_labels: int):
    """A random-init Qwen2 classifier of `kind` with the character tokenizer, saved like a downloaded model."""
    import transformers

    tokenizer = build_char_tokenizer()
    torch.manual_seed(0)
    getattr(transformers, kind)(tiny_config(tokenizer, num_labels=num_labels)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    return save_tiny_classifier("Qwen2ForTokenClassification", tmp_path_factory.mktemp("prm"), num_labels=2)


@pytest.fixture(scope="module")
def generative_prm_dir(tmp_path_factory):
    """A random-init causal LM with the character tokenizer, saved like a downloaded generative PRM."""
    from transformers import Qwen2ForCausalLM

    path = tmp_path_factory.mktemp("generative_prm")
    tokenizer = build_char_tokenizer()
    torch.manual_seed(1)
    Qwen2ForCausalLM(tiny_config(tokenizer, eos_token_id=tokenizer.eos_token_id)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    return save_tiny_classifier("Qwen2ForSequenceClassification", tmp_path_factory.mktemp("rm"), num_labels=1)


@pytest.fixture(scope="module")
def bpe_tokenizer():
    """A byte-level BPE tokenizer trained here, with a chat template: subword tokens spanning several characters."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    special = ["<pad>", "<eos>", "<|user|>", "<|assistant|>"]
    corpus = ["copy: apple banana cherry grape lemon mango", "apple banana", "cherry grape", "lemon mango"] * 50
    backend.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                        padding_side="left")  # fmt: skip
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def test_token_spans_on_subword_tokens(bpe_tokenizer):
    ids = bpe_tokenizer("apple banana cherry é")["input_ids"] + [bpe_tokenizer.eos_token_id]
    text, spans = token_spans(bpe_tokenizer, ids)
    assert text == "apple banana cherry é"
    assert any(end - start > 1 for start, end in spans), "BPE merges characters into one token"
    assert "".join(text[s:e] for s, e in spans) == text and spans[-1] == (len(text), len(text))  # eos: no text
    assert token_at(spans, text.index("banana") + 5) == next(k for k, (s, e) in enumerate(spans) if s <= 11 < e)


def test_prm_scores_each_step_on_its_last_token_and_none_elsewhere(prm_dir):
    prm = ProcessRewardModel(str(prm_dir), separator="|", batch_size=2)
    completions = ["ab|cd|e", "abc", "|x||"]
    spans = [[(i, i + 1) for i in range(len(c))] + [(len(c), len(c))] for c in completions]  # char tokens + eos
    rewards = prm(prompts=["p>", "q>", "r>"], completions=completions, token_spans=spans)
    scored = [[k for k, v in enumerate(row) if v is not None] for row in rewards]
    assert scored == [[1, 4, 6], [2], [1]]  # the last character of each non-empty step
    assert all(len(row) == len(s) for row, s in zip(rewards, spans))
    values = [v for row in rewards for v in row if v is not None]
    assert all(0 < v < 1 for v in values)
    # The score is P(label 1) at the step's tag in prompt + step + tag + ...: check one by hand.
    batch = prm.tokenizer("p>ab|cd|e|", return_tensors="pt")
    with torch.no_grad():
        probs = prm.model(**batch).logits.softmax(-1)[0, :, 1]
    assert rewards[0][4] == pytest.approx(probs[7].item(), abs=1e-6)  # the tag after "cd" is character 7
    # Batching and padding do not change a score.
    alone = ProcessRewardModel(str(prm_dir), separator="|", batch_size=1)
    for row, single in zip(rewards, alone(prompts=["p>", "q>", "r>"], completions=completions, token_spans=spans)):
        assert [v is None for v in row] == [v is None for v in single]
        assert [v for v in row if v is not None] == pytest.approx([v for v in single if v is not None], abs=1e-5)


def test_generative_prm_scores_p_good_over_good_plus_bad_at_each_step_tag(generative_prm_dir):
    # The character tokenizer has no "-" or Cyrillic: good "+", bad "=", tag ":", steps split at "|".
    prm = GenerativeProcessRewardModel(str(generative_prm_dir), separator="|", step_tag=":", good_token="+",
                                       bad_token="=", batch_size=2)  # fmt: skip
    completions = ["ab|cd|e", "abc", "|x||"]
    spans = [[(i, i + 1) for i in range(len(c))] + [(len(c), len(c))] for c in completions]  # char tokens + eos
    rewards = prm(prompts=["p>", "q>", "r>"], completions=completions, token_spans=spans)
    assert [[k for k, v in enumerate(row) if v is not None] for row in rewards] == [[1, 4, 6], [2], [1]]
    # By hand: the PRM reads "p>ab:cd:e:"; each tag's next-token logits of "+" and "=", softmaxed, first entry.
    tokenizer = prm.tokenizer
    ids = tokenizer("p>ab:cd:e:", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = prm.model(input_ids=torch.tensor([ids])).logits[0]
    good, bad = tokenizer.convert_tokens_to_ids("+"), tokenizer.convert_tokens_to_ids("=")
    for tag, token in zip([4, 7, 9], [1, 4, 6]):  # the tags' positions in the PRM text; the policy tokens scored
        p_good, p_bad = logits[tag, good].exp(), logits[tag, bad].exp()
        assert rewards[0][token] == pytest.approx((p_good / (p_good + p_bad)).item(), abs=1e-5)
    assert len({round(v, 6) for row in rewards for v in row if v is not None}) > 1, "scores must depend on the text"
    alone = GenerativeProcessRewardModel(str(generative_prm_dir), separator="|", step_tag=":", good_token="+",
                                         bad_token="=", batch_size=1)  # fmt: skip
    for row, single in zip(rewards, alone(prompts=["p>", "q>", "r>"], completions=completions, token_spans=spans)):
        assert [v for v in row if v is not None] == pytest.approx([v for v in single if v is not None], abs=1e-5)


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [("ab", "=", "good_token='ab' is not a single token"), ("+", "§", "bad_token='§' is not a single token"),
     ("+", "+", "are the same token")],
)  # fmt: skip
def test_generative_prm_refuses_good_and_bad_that_are_not_single_tokens(generative_prm_dir, good, bad, message):
    with pytest.raises(ValueError, match=message):
        GenerativeProcessRewardModel(str(generative_prm_dir), good_token=good, bad_token=bad)


def test_generative_prm_refusal_is_one_config_line(generative_prm_dir, tmp_path):
    result = run_in_process("debug=fast", "logger=none", "reward/token_function=generative_prm",
                            f"reward.token_function.path={generative_prm_dir}", "reward.token_function.good_token=ab",
                            f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("harness: error: reward.token_function: good_token='ab' is not a single token"), last
    assert not (tmp_path / "run").exists()


@pytest.mark.e2e
def test_generative_prm_token_reward_trains_a_few_steps(generative_prm_dir, tmp_path):
    result = run_in_process("debug=fast", "logger=none", "reward/token_function=generative_prm",
                            f"reward.token_function.path={generative_prm_dir}", "reward.token_function.separator=a",
                            "reward.token_function.step_tag=:", "reward.token_function.bad_token='='",
                            f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [r for r in read_metrics(tmp_path) if "reward" in r]
    assert [r["step"] for r in records] == [2, 4]
    assert all(r["adv/frac_zero"] > 0 and r["adv/within_seq_std"] > 0 for r in records)


def test_reward_model_scores_one_value_per_completion(rm_dir):
    rm = SequenceRewardModel(str(rm_dir), batch_size=2)
    scores = rm(prompts=["ab>", "c>", "d>"], completions=["ab", "xyz", [{"role": "assistant", "content": "d"}]])
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    assert SequenceRewardModel(str(rm_dir), batch_size=1)(prompts=["ab>"], completions=["ab"]) == pytest.approx(
        scores[:1], abs=1e-5
    )


def test_a_directory_without_a_model_is_a_one_line_config_error(tmp_path):
    # Found once the job loads the reward model (Hydra's run, in this process: tests/in_process.py).
    result = run_in_process("debug=fast", "logger=none", "reward/token_function=prm",
                            f"reward.token_function.path={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"harness: error: reward.token_function: {tmp_path} is not a saved model directory (no config.json)"
    )
    assert not (tmp_path / "run").exists()


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.e2e
def test_prm_token_reward_trains_a_few_steps(prm_dir, tmp_path):
    result = run_cli("debug=fast", "logger=none", "reward/token_function=prm", f"reward.token_function.path={prm_dir}",
                     "reward.token_function.separator=a", f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [r for r in read_metrics(tmp_path) if "reward" in r]
    assert [r["step"] for r in records] == [2, 4]
    # Sparse: only step ends carry a reward, so advantages are 0 after a completion's last step.
    assert all(r["adv/frac_zero"] > 0 and r["adv/within_seq_std"] > 0 for r in records)


@pytest.mark.e2e
def test_bpe_chat_model_with_conversational_prompts_trains(bpe_tokenizer, tmp_path):
    from safetensors.torch import load_file
    from transformers import Qwen2ForCausalLM

    model_dir = tmp_path / "policy"
    torch.manual_seed(0)
    config = tiny_config(bpe_tokenizer, eos_token_id=bpe_tokenizer.eos_token_id, tie_word_embeddings=True)
    Qwen2ForCausalLM(config).save_pretrained(model_dir)
    bpe_tokenizer.save_pretrained(model_dir)
    run_dir = tmp_path / "run"
    result = run_cli(
        "debug=fast", "logger=none", "model=local", f"model.path={model_dir}", "reward.max_completion_length=6",
        "reward.dataset._target_=tests.chat_task.chat_copy_dataset", "~reward.dataset.length", "~reward.dataset.alphabet", "reward.eval_dataset=null",
        "reward.functions.position_accuracy.fn._target_=tests.chat_task.chat_accuracy",
        "reward.token_function._target_=tests.chat_task.chars_in_place", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [r for r in read_metrics(run_dir) if "reward" in r]
    assert [r["step"] for r in records] == [2, 4] and all(r["adv/within_seq_std"] > 0 for r in records)
    before, after = load_file(model_dir / "model.safetensors"), load_file(run_dir / "final_model" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter changed"


def test_lazy_spans_equal_the_eager_ones(bpe_tokenizer):
    from harness.algorithms.token_spans import LazySpans

    ids = [bpe_tokenizer("apple banana")["input_ids"], bpe_tokenizer("cherry é")["input_ids"]]
    lazy = LazySpans(bpe_tokenizer, ids)
    assert len(lazy) == 2 and lazy._rows == {}  # nothing decoded before it is read
    assert list(lazy) == [token_spans(bpe_tokenizer, row)[1] for row in ids] and lazy[:1] == [lazy[0]]
