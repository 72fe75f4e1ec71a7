"""transformers' configuration of a crammed BERT exported by cramkit (imports transformers only).

model.io copies this file into every exported crammed model folder; config.json there names it in its
`auto_map`, so `AutoConfig.from_pretrained(folder, trust_remote_code=True)` builds it. The fields are
cramkit's ModelConfig fields under the same names (one config.json serves cramkit and transformers); the
usual transformers names (num_hidden_layers, max_position_embeddings, ...) are aliases of them.
"""

from transformers import PreTrainedConfig


class CrammedConfig(PreTrainedConfig):
    """A crammed BERT: pre-LN, bias-free linears, gated-GELU FFN, scaled sinusoidal positions, tied decoder.
    Defaults are cramkit's crammed-bert preset; `dropout` applies everywhere, including the classifier."""

    model_type = "crammed_bert"
    attribute_map = {"num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
                     "max_position_embeddings": "max_seq_len", "layer_norm_eps": "norm_eps",
                     "initializer_range": "init_std", "hidden_dropout_prob": "dropout"}

    arch: str = "crammed"
    vocab_size: int = 32768
    max_seq_len: int = 128
    hidden_size: int = 768
    num_layers: int = 16
    num_heads: int = 12
    intermediate_size: int = 3072
    dropout: float = 0.0
    pad_token_id: int = 0
    type_vocab_size: int = 0
    norm_eps: float = 1e-12
    init_std: float = 0.02
    head_dim: int = 1024
    pool: str = "first"
    tie_word_embeddings: bool = False  # the decoder is the input embedding itself: nothing to tie

    def __post_init__(self, **kwargs):
        kwargs.pop("cramkit", None)  # cramkit's own record of the weights; not carried into re-saved folders
        if self.arch != "crammed":
            raise ValueError(f"CrammedConfig.arch must be 'crammed', got {self.arch!r}")
        if self.pool not in ("first", "mean"):
            raise ValueError(f"CrammedConfig.pool must be 'first' or 'mean', got {self.pool!r}")
        if self.hidden_size % self.num_heads or self.intermediate_size % 2:
            raise ValueError(f"CrammedConfig: hidden_size ({self.hidden_size}) must be divisible by num_heads "
                             f"({self.num_heads}) and intermediate_size ({self.intermediate_size}) even")
        super().__post_init__(**kwargs)

    @property
    def crammed(self) -> bool:
        return True
