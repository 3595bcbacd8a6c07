"""A small byte-level BPE tokenizer for the synthetic world, every digit its own token.

Splitting digits makes arithmetic learnable by a ~1M-parameter model (it reads numbers digit by
digit, while BPE merges shorten the rest of the text and keep the vocabulary small). Byte-level,
so any text still encodes. Saved as
a standard ``PreTrainedTokenizerFast`` directory that ``AutoTokenizer.from_pretrained`` loads.
"""

from __future__ import annotations

from typing import Iterable

from ttc_lib.tasks.prompts import EOS_TEXT

PAD_TEXT = "<|pad|>"
BOS_TEXT = "<|bos|>"
SPECIAL_TOKENS = [PAD_TEXT, BOS_TEXT, EOS_TEXT]


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 320):
    """Train a byte-level BPE on ``corpus`` (digits isolated) and wrap it for transformers.

    ``vocab_size`` counts the 256 byte symbols and the special tokens; merges fill the rest
    (whole words of the world's questions). Encoding prepends BOS; EOS is written as text.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} must be at least {256 + len(SPECIAL_TOKENS)} "
                         "(256 bytes + special tokens)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    bos_id = tok.token_to_id(BOS_TEXT)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TEXT} $A", pair=f"{BOS_TEXT} $A $B", special_tokens=[(BOS_TEXT, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS_TEXT, eos_token=EOS_TEXT,
                                   pad_token=PAD_TEXT, padding_side="left")
