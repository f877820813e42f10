"""A tiny GPT-2 with a tiny byte-level BPE tokenizer, saved by transformers (tests only)."""

from __future__ import annotations

from pathlib import Path

TEXT = ("The quick brown fox jumps over the lazy dog. A stitch in time saves nine. "
        "Every good boy deserves fudge. The rain in Spain stays mainly in the plain. ") * 40


def corpus_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics)[:12])


def save_tiny_gpt2(folder: Path, text: str, train_steps: int = 0, seed: int = 0):
    """Train a 320-id BPE on ``text`` and save it with a tiny GPT-2 (trained ``train_steps`` on
    ``text`` with AdamW, else random) into ``folder`` as transformers does. Returns (model, tokenizer)."""
    import tokenizers
    import torch
    import transformers

    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([text], trainer=trainer)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                               eos_token="<|endoftext|>")
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=eos, eos_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(config)
    if train_steps:
        ids = torch.tensor(tok(text)["input_ids"])
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(seed)
        for _ in range(train_steps):
            starts = torch.randint(0, len(ids) - 33, (8,), generator=g)
            batch = torch.stack([ids[s:s + 33] for s in starts.tolist()])
            loss = model(batch, labels=batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return model, tok
