"""Training data: assistant-only labels with the end-of-turn token, over-long handling, packing isolation,
deterministic splits and streamed evaluation perplexity — on the bundled SmolLM2 tokenizer and model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from train_data_helpers import claims_conversation, write_chat_jsonl  # noqa: E402

from training.data import (  # noqa: E402
    IGNORE,
    REASON_TOO_LONG,
    REASON_TRUNCATED_AWAY,
    DataStats,
    collate,
    encode_conversation,
    epoch_order,
    plan_batches,
    prepare_examples,
    split_train_val,
)


@pytest.fixture(scope="module")
def smollm2_dir():
    from studio.models import smollm2_hf_dir

    torch.set_num_threads(1)
    return smollm2_hf_dir()


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="module")
def base_model(smollm2_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()


def labelled_runs(tokenizer, ex) -> list[str]:
    """The decoded text of each contiguous run of labelled tokens."""
    runs, current = [], []
    for tok, lab in zip(ex.input_ids, ex.labels, strict=True):
        if lab != IGNORE:
            assert lab == tok
            current.append(tok)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


HAND_BUILT = [
    {"role": "system", "content": "You answer for the claims desk."},
    {"role": "user", "content": "Is claim 7 paid?"},
    {"role": "assistant", "content": "Yes, it was paid on May 2."},
    {"role": "user", "content": "Thanks. And claim 8?"},
    {"role": "assistant", "content": "Claim 8 is on hold."},
]


def test_only_assistant_turns_are_labelled_each_ending_with_its_end_of_turn_token(tokenizer):
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # SmolLM2: the pad=EOS trap is real here
    ex = encode_conversation(tokenizer, HAND_BUILT)
    assert ex.input_ids == tokenizer.apply_chat_template(HAND_BUILT, tokenize=True, return_dict=True)["input_ids"]
    assert labelled_runs(tokenizer, ex) == ["Yes, it was paid on May 2.<|im_end|>", "Claim 8 is on hold.<|im_end|>"]
    assert sum(1 for lab in ex.labels if lab == tokenizer.eos_token_id) == 2


def test_padding_is_ignored_by_position_so_the_eos_inside_answers_stays_labelled(tokenizer):
    short = encode_conversation(tokenizer, claims_conversation(0))
    long = encode_conversation(tokenizer, HAND_BUILT)
    batch = collate([short, long], tokenizer.pad_token_id, packing=False)
    row = batch["labels"][0]
    n = len(short.input_ids)
    assert (batch["input_ids"][0, n:] == tokenizer.eos_token_id).all()  # padded with the EOS id ...
    assert (row[n:] == IGNORE).all()  # ... which is ignored there
    assert int((row[:n] == tokenizer.eos_token_id).sum()) == 1  # but the answer's own EOS is learned
    assert (batch["attention_mask"][0, n:] == 0).all()


def test_a_template_without_an_end_of_turn_token_gets_eos_appended_and_learned(smollm2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    ex = encode_conversation(tok, HAND_BUILT)
    runs = labelled_runs(tok, ex)
    assert [r.removesuffix(tok.eos_token).strip() for r in runs] == ["Yes, it was paid on May 2.", "Claim 8 is on hold."]
    assert all(r.endswith(tok.eos_token) for r in runs)


def test_overlong_conversations_are_counted_and_dropped_or_truncated_on_purpose(tokenizer):
    long_question = [{"role": "user", "content": "Please read this. " * 60}, {"role": "assistant", "content": "Done."}]
    early_answer = [{"role": "user", "content": "Status of claim 4?"}, {"role": "assistant", "content": "Paid."},
                    {"role": "user", "content": "And the history? " * 60}, {"role": "assistant", "content": "See file."}]
    no_answer = [{"role": "user", "content": "Hello?"}]
    convs = [claims_conversation(1), long_question, early_answer, no_answer]

    dropped = DataStats(file="x", records=len(convs))
    kept = prepare_examples(tokenizer, convs, max_length=96, overlong="drop", stats=dropped)
    assert len(kept) == 1 and dropped.kept == 1
    assert dropped.dropped == {REASON_TOO_LONG: 2, "no assistant turn": 1}

    cut = DataStats(file="x", records=len(convs))
    kept = prepare_examples(tokenizer, convs, max_length=96, overlong="truncate", stats=cut)
    assert cut.kept == 2 and cut.truncated == 1
    assert cut.dropped == {REASON_TRUNCATED_AWAY: 1, "no assistant turn": 1}
    assert all(len(ex.input_ids) <= 96 for ex in kept)
    assert labelled_runs(tokenizer, kept[1]) == ["Paid.<|im_end|>"]  # the answer inside the limit is kept
    for stats in (dropped, cut):
        assert stats.kept + sum(stats.dropped.values()) + stats.quarantined == stats.records


def test_packing_never_lets_one_example_attend_to_another(tokenizer, base_model):
    examples = [encode_conversation(tokenizer, claims_conversation(i)) for i in (0, 5)] + [
        encode_conversation(tokenizer, HAND_BUILT)]
    packed = collate(examples, tokenizer.pad_token_id, packing=True)
    with torch.no_grad():
        logits = base_model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
        # the same row read as one long sequence: later examples then see earlier ones (the check can fail)
        leaky = base_model(input_ids=packed["input_ids"], use_cache=False).logits[0]
        start = 0
        for ex in examples:
            alone = base_model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0]
            n = len(ex.input_ids)
            assert torch.allclose(logits[start:start + n], alone, atol=1e-4), "packed example saw another example"
            if start:
                assert (leaky[start:start + n] - alone).abs().max() > 1e-2
            start += n


def test_packed_and_padded_batches_give_the_same_loss(tokenizer, base_model):
    from training.loss import supervised_nll

    examples = [encode_conversation(tokenizer, claims_conversation(i)) for i in range(3)]
    with torch.no_grad():
        packed_nll, packed_n = supervised_nll(base_model, collate(examples, tokenizer.pad_token_id, packing=True))
        padded_nll, padded_n = supervised_nll(base_model, collate(examples, tokenizer.pad_token_id, packing=False))
    assert packed_n == padded_n == sum(ex.n_label_tokens for ex in examples)
    assert abs(float(packed_nll) - float(padded_nll)) < 1e-3 * float(padded_nll)


def test_padding_a_packed_row_to_a_multiple_changes_neither_loss_nor_logits(tokenizer, base_model):
    from training.loss import supervised_nll

    examples = [encode_conversation(tokenizer, claims_conversation(i)) for i in range(3)]
    exact = collate(examples, tokenizer.pad_token_id, packing=True)
    padded = collate(examples, tokenizer.pad_token_id, packing=True, multiple_of=64)
    n = exact["input_ids"].shape[1]
    assert n % 64 and padded["input_ids"].shape[1] == n + (-n % 64)
    assert (padded["labels"][0, n:] == -100).all() and padded["position_ids"][0, n] == 0
    with torch.no_grad():
        a, n_a = supervised_nll(base_model, exact)
        b, n_b = supervised_nll(base_model, padded)
        la = base_model(input_ids=exact["input_ids"], position_ids=exact["position_ids"], use_cache=False).logits
        lb = base_model(input_ids=padded["input_ids"], position_ids=padded["position_ids"], use_cache=False).logits
    assert n_a == n_b and abs(float(a) - float(b)) < 1e-4 * float(a)
    assert torch.allclose(la[0], lb[0, :n], atol=1e-4)  # the real tokens never see the padding


def test_batch_plan_is_fixed_by_seed_and_epoch_and_packs_within_the_token_budget():
    lengths = [30, 80, 50, 120, 10, 64, 90, 40]
    order = epoch_order(len(lengths), seed=3, epoch=0)
    assert order == epoch_order(len(lengths), seed=3, epoch=0)
    assert order != epoch_order(len(lengths), seed=3, epoch=1)
    plan = plan_batches(lengths, order, batch_size=2, max_length=100, packing=True)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 200 or len(b) == 1 for b in plan)
    assert [i for b in plan for i in b] == order


def test_validation_split_is_deterministic_whatever_the_line_order(tmp_path):
    convs = [claims_conversation(i) for i in range(20)]
    a_train, a_val = split_train_val(write_chat_jsonl(tmp_path / "a.jsonl", convs), tmp_path / "a")
    b_train, b_val = split_train_val(write_chat_jsonl(tmp_path / "b.jsonl", convs[::-1]), tmp_path / "b")
    read = lambda p: sorted(p.read_text().splitlines())  # noqa: E731
    assert read(a_val) == read(b_val) and len(read(a_val)) == 4
    assert read(a_train) == read(b_train) and len(read(a_train)) == 16
    assert not set(read(a_val)) & set(read(a_train))


def test_eval_perplexity_is_streamed_batch_by_batch_and_equals_the_full_computation(tokenizer, base_model):
    import math

    import torch.nn.functional as F

    from training.evaluate import perplexity

    convs = [claims_conversation(i) for i in range(6)] + [HAND_BUILT]
    examples = [encode_conversation(tokenizer, c) for c in convs]
    seen: list[tuple[int, int]] = []
    hook = base_model.lm_head.register_forward_hook(lambda m, i, out: seen.append(out.shape[:-1].numel()))
    consumed = []

    def lazily():
        for ex in examples:
            consumed.append(len(seen))  # how many batches had run when this example was requested
            yield ex

    try:
        ppl, mean_nll, n = perplexity(base_model, lazily(), tokenizer.pad_token_id, batch_tokens=160, device="cpu")
    finally:
        hook.remove()
    assert len(seen) >= 3  # several batches ...
    assert consumed[-1] > 0  # ... run while examples were still being read
    assert sum(seen) == n == sum(ex.n_label_tokens for ex in examples)  # logits only at labels
    total = 0.0
    with torch.no_grad():
        for ex in examples:  # reference: full logits, one example at a time
            logits = base_model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0, :-1]
            total += float(F.cross_entropy(logits, torch.tensor(ex.labels[1:]), ignore_index=IGNORE, reduction="sum"))
    assert mean_nll == pytest.approx(total / n, rel=1e-4)
    assert ppl == pytest.approx(math.exp(total / n), rel=1e-4)


def test_train_yaml_sets_fields_and_a_wrong_key_is_one_clear_sentence(tmp_path):
    from studio.errors import StudioError
    from training.config import TrainConfig

    good = tmp_path / "train.yaml"
    good.write_text("learning_rate: 1.0e-4\nlora_r: 16\npacking: false\n")
    cfg = TrainConfig.from_yaml(good)
    assert (cfg.learning_rate, cfg.lora_r, cfg.packing, cfg.lora_alpha) == (1e-4, 16, False, 16)
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora_rank: 16\n")
    with pytest.raises(StudioError, match="bad.yaml: field lora_rank: Extra inputs are not permitted"):
        TrainConfig.from_yaml(bad)


def test_validation_split_keeps_variants_of_one_prompt_and_one_duplicate_group_on_one_side(tmp_path):
    """Two answers to one prompt, and rows of one near-duplicate cluster, never straddle train and validation."""
    import json

    lines = []
    for i in range(30):
        question = f"Which status code do we use for ticket {i}?"
        lines.append({"messages": [{"role": "user", "content": question},
                                   {"role": "assistant", "content": f"Code CLM-{i}."}]})
        lines.append({"messages": [{"role": "user", "content": "  " + question.upper()},  # same prompt, normalized
                                   {"role": "assistant", "content": f"It is CLM-{i}, as the desk guide says."}]})
    for i in range(6):  # different prompts tied only by their near-duplicate cluster
        lines.append({"messages": [{"role": "user", "content": f"Paraphrase {i} of the deductible question"},
                                   {"role": "assistant", "content": "The deductible is $500."}],
                      "dedupe": {"dup_cluster": "deductible"}})
    path = tmp_path / "all.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    train_file, val_file = split_train_val(path, tmp_path / "out")
    side = {}
    for name, f in (("train", train_file), ("val", val_file)):
        for line in f.read_text().splitlines():
            user = json.loads(line)["messages"][0]["content"].strip().lower()
            side.setdefault(user, set()).add(name)
    assert all(len(s) == 1 for s in side.values())
    paraphrases = {next(iter(s)) for u, s in side.items() if u.startswith("paraphrase")}
    assert len(paraphrases) == 1
    n_val = len(val_file.read_text().splitlines())
    assert 4 <= n_val <= 12 and n_val + len(train_file.read_text().splitlines()) == len(lines)


def test_prompt_labels_are_the_non_assistant_tokens_and_their_loss_matches_the_full_logits(tokenizer, base_model):
    """Instruction modelling (prompt_loss_weight): every token outside the assistant turns is a prompt label except
    each example's first (in a packed row it would be predicted from the previous example) and the padding; the
    prompt NLL from `nll_parts` equals the cross-entropy of the full logits at exactly those positions."""
    import torch.nn.functional as F

    from training.loss import nll_parts

    examples = [encode_conversation(tokenizer, claims_conversation(i)) for i in range(3)]
    batch = collate(examples, tokenizer.pad_token_id, packing=True, multiple_of=64, with_prompt_labels=True)
    ids, labels, prompt = batch["input_ids"][0], batch["labels"][0], batch["prompt_labels"][0]
    real = sum(len(ex.input_ids) for ex in examples)
    starts = {0, len(examples[0].input_ids), len(examples[0].input_ids) + len(examples[1].input_ids)}
    for pos in range(len(ids)):
        if pos >= real or pos in starts:
            assert prompt[pos] == IGNORE and labels[pos] == IGNORE
        elif labels[pos] == IGNORE:
            assert prompt[pos] == ids[pos]
        else:
            assert prompt[pos] == IGNORE
    assert "claim" in tokenizer.decode([t for t in prompt.tolist() if t != IGNORE]).lower()
    with torch.no_grad():
        assistant, prompt_nll, n = nll_parts(base_model, batch, with_prompt=True)
        without, none, n2 = nll_parts(base_model, batch)
        logits = base_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    expected = F.cross_entropy(logits[0, :-1].float(), prompt[1:], ignore_index=IGNORE, reduction="sum")
    assert none is None and n == n2 and abs(float(assistant) - float(without)) < 1e-4 * float(without)
    assert abs(float(prompt_nll) - float(expected)) < 1e-3 * float(expected)
    unpacked = collate(examples, tokenizer.pad_token_id, packing=False, with_prompt_labels=True)
    assert int((unpacked["prompt_labels"] != IGNORE).sum()) == int((prompt != IGNORE).sum())


def test_neftune_noise_is_scaled_per_example_and_only_in_training_mode():
    """NEFTune: alpha/sqrt(L·d) with L the token's own example length (not the packed row's), none on padding, and
    the hook leaves embeddings untouched in eval mode (validation and eval score clean inputs)."""
    import math

    from training.trainer import neftune_hook, neftune_scale

    scale = neftune_scale([10, 40], (1, 64), alpha=5.0, dim=16, packing=True)
    assert torch.allclose(scale[0, :10], torch.full((10,), 5 / math.sqrt(10 * 16)))
    assert torch.allclose(scale[0, 10:50], torch.full((40,), 5 / math.sqrt(40 * 16)))
    assert (scale[0, 50:] == 0).all()
    rows = neftune_scale([10, 40], (2, 64), alpha=5.0, dim=16, packing=False)
    assert rows[0, 9] > 0 and rows[0, 10] == 0 and rows[1, 39] > 0 and rows[1, 40] == 0
    emb = torch.nn.Embedding(100, 16)
    emb.register_forward_hook(neftune_hook(lambda: scale))
    ids = torch.arange(64).unsqueeze(0)
    clean = emb.weight[ids].detach()
    emb.train()
    noisy = emb(ids).detach()
    delta = (noisy - clean).abs()
    assert (delta[0, :50].amax(dim=-1) > 0).all() and (delta[0, 50:] == 0).all()
    assert (delta[0] <= scale[0].unsqueeze(-1) + 1e-6).all()
    emb.eval()
    assert torch.equal(emb(ids).detach(), clean)
