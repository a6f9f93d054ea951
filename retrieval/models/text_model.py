"""CXR-BERT: BERT-base plus a projection head on the last layer's [CLS] token, and its tokenisation rules.

Own classes (no ``trust_remote_code``): ``bert`` is ``transformers.BertModel`` without pooler, so the released keys
``bert.*`` and ``cls_projection_head.*`` load as they are; the masked-LM head ``cls.predictions.*`` is not needed
for embeddings and is dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizer

from cxr_explorer.retrieval.models.registry import TextDims


class TextInputError(ValueError):
    """A query the text encoder cannot take (empty, special tokens, too long)."""


class BertProjectionHead(nn.Module):
    """Linear(H->P) -> exact GELU -> LayerNorm(P, eps 1e-12) -> Linear(P->P)."""

    def __init__(self, hidden_size: int, projection_size: int) -> None:
        super().__init__()
        self.dense_to_hidden = nn.Linear(hidden_size, projection_size)
        self.LayerNorm = nn.LayerNorm(projection_size, eps=1e-12)
        self.dense_to_output = nn.Linear(projection_size, projection_size)

    def forward(self, cls_hidden: torch.Tensor) -> torch.Tensor:
        """[B, H] -> [B, P] (unnormalised)."""
        return self.dense_to_output(self.LayerNorm(F.gelu(self.dense_to_hidden(cls_hidden))))


def bert_config(dims: TextDims, **overrides: Any) -> BertConfig:
    """A BertConfig with CXR-BERT's fixed fields (GELU, eps 1e-12, absolute positions, pad id 0)."""
    fields: dict[str, Any] = dict(
        vocab_size=dims.vocab_size, hidden_size=dims.hidden_size, num_hidden_layers=dims.num_hidden_layers,
        num_attention_heads=dims.num_attention_heads, intermediate_size=dims.intermediate_size,
        max_position_embeddings=dims.max_position_embeddings, hidden_act="gelu", type_vocab_size=2,
        layer_norm_eps=1e-12, pad_token_id=0, position_embedding_type="absolute",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    fields.update(overrides)
    return BertConfig(**fields)


class CXRBertModel(nn.Module):
    """CXR-BERT text tower; ``forward`` returns L2-normalised [B, projection_size] embeddings."""

    def __init__(self, config: BertConfig, projection_size: int = 128) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls_projection_head = BertProjectionHead(config.hidden_size, projection_size)

    def project(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids [B, T] and mask [B, T] -> unnormalised projected [CLS] embeddings [B, P]."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.cls_projection_head(hidden[:, 0, :])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] ids and mask -> L2-normalised [B, P]."""
        return F.normalize(self.project(input_ids, attention_mask), dim=1)


class TextTokenizer:
    """Tokenises as hi-ml does: reject special tokens except [MASK], strip trailing ``!?.``, pad to the longest.

    Unlike hi-ml, an empty query and one longer than the model's positions are clear :class:`TextInputError`s.
    """

    def __init__(self, tokenizer: BertTokenizer, max_length: int = 512) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.forbidden = [t for t in tokenizer.all_special_tokens if t != tokenizer.mask_token]

    @classmethod
    def from_vocab(cls, vocab: str | Path | OrderedDict[str, int], do_lower_case: bool = True,
                   max_length: int = 512) -> TextTokenizer:
        """From a vocab.txt path or an ordered token->id dict (never ``vocab_file=``: transformers 5 ignores it)."""
        source = str(vocab) if isinstance(vocab, (str, Path)) else vocab
        return cls(BertTokenizer(vocab=source, do_lower_case=do_lower_case), max_length)

    def check(self, text: str) -> None:
        """Raise :class:`TextInputError` for text the model must not see."""
        if not text.rstrip("!?.").strip():
            raise TextInputError("the query is empty")
        found = [t for t in self.forbidden if t in text]
        if found:
            raise TextInputError(f"the text contains the special token(s) {found}; only [MASK] is allowed")

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """list of B strings -> (input_ids [B, T], attention_mask [B, T]), T = longest sequence."""
        if isinstance(texts, str) or len(texts) == 0:
            raise TextInputError("expected a non-empty list of strings")
        for t in texts:
            self.check(t)
        prompts = [t.rstrip("!?.") for t in texts]
        enc = self.tokenizer(prompts, add_special_tokens=True, padding="longest", return_tensors="pt")
        length = int(enc["input_ids"].shape[1])
        if length > self.max_length:
            raise TextInputError(f"the text is {length} tokens long; the model takes at most {self.max_length}")
        return enc["input_ids"], enc["attention_mask"]

    def count_tokens(self, text: str) -> int:
        """Number of tokens including [CLS] and [SEP]."""
        return len(self.tokenizer(text.rstrip("!?."), add_special_tokens=True)["input_ids"])
