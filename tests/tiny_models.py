"""Tiny random-initialised models and a tokenizer trained here, so unit tests need no network
and no real weights. Imported by conftest.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "xapps" / "data" / "sample_multilingual.jsonl"

EXTRA_TEXT = [
    "Tokenizers must keep   odd  whitespace\tand\nnewlines aligned.",
    "Emoji 😀🎉 and accents: café naïve Ærø straße",
    "Кириллица и греческий: αβγ δέλτα",
    "日本語のテキストと한국어 텍스트",
    "Numbers 3.14, 2,500 and 6½ sacks; e-mail: a@b.org",
]


def sample_texts() -> list[str]:
    return [json.loads(line)["text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def build_tokenizer(out: Path):
    """A small SentencePiece-style Unigram tokenizer with XLM-R's special tokens and layout."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from tokenizers.processors import TemplateProcessing
    from transformers import XLMRobertaTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [normalizers.Nmt(), normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="<unk>",
                                      shrinking_factor=0.75)
    tok.train_from_iterator(sample_texts() * 3 + EXTRA_TEXT * 3, trainer=trainer)
    tok.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    fast = XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", model_max_length=64)
    fast.save_pretrained(out)
    return fast


def build_tiny_xlmr(out: Path, max_positions: int = 34) -> Path:
    """XLM-R with hidden 32 and 2 layers; 34 positions -> 32 usable, so windowing is exercised."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=64,
                              max_position_embeddings=max_positions, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(out)
    return out


def build_tiny_mt5(out: Path) -> Path:
    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)
    torch.manual_seed(0)
    config = MT5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2,
                       num_decoder_layers=2, num_heads=4, pad_token_id=1, eos_token_id=2,
                       decoder_start_token_id=1)
    MT5ForConditionalGeneration(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_xlmr_path(tmp_path_factory) -> Path:
    return build_tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture(scope="session")
def tiny_mt5_path(tmp_path_factory) -> Path:
    return build_tiny_mt5(tmp_path_factory.mktemp("tiny-mt5"))
