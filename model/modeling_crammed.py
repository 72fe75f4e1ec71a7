"""transformers classes for a crammed BERT exported by cramkit: AutoModel, AutoModelForMaskedLM and
AutoModelForSequenceClassification load an exported folder with `trust_remote_code=True`.

model.io copies this file into the folder with configuration_crammed.py and bert.py (the architecture,
torch only), so nothing here needs cramkit. Every class keeps cramkit's tensor names (`encoder.*`, and
`pool.*`, `out.*` for the classifier), so the folder's model.safetensors loads in both without renaming.
The encoder and MLM classes take optional `segment_ids` [B, S] (a document number per token of a packed
row): attention then stays within each document, as in a run trained with `document_mask=true`.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput, SequenceClassifierOutput

from .bert import Embeddings, Encoder, pool_tokens, sinusoid
from .configuration_crammed import CrammedConfig


class CrammedPreTrainedModel(PreTrainedModel):
    config_class = CrammedConfig
    base_model_prefix = "encoder"
    _no_split_modules = ["Block"]
    accepts_loss_kwargs = False  # the loss is a plain mean over the batch; the Trainer scales accumulation

    def _init_weights(self, module):
        """As cramkit's init_weights (normal(0, init_std) weights, zero biases and padding row, LayerNorm
        1/0), plus the position table, a buffer that is never saved, and its learnt scale."""
        super()._init_weights(module)
        if isinstance(module, Embeddings) and module.position is None:
            init.copy_(module.sinusoid, sinusoid(*module.sinusoid.shape))
            init.constant_(module.position_scale, module.sinusoid.shape[1] ** -0.5)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embeddings.word

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embeddings.word = value


class CrammedModel(CrammedPreTrainedModel):
    """The encoder: last_hidden_state [B, S, hidden] after the final LayerNorm."""

    def __init__(self, config: CrammedConfig):
        super().__init__(config)
        self.encoder = Encoder(config)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None,
                return_dict: bool | None = None) -> BaseModelOutput:
        return BaseModelOutput(last_hidden_state=self.encoder(input_ids, attention_mask, token_type_ids, segment_ids))


class CrammedForMaskedLM(CrammedPreTrainedModel):
    """Encoder + a decoder that is the input embedding matrix (no transform, no bias): logits at every position;
    `labels` (-100 = ignored) give the mean cross-entropy."""

    def __init__(self, config: CrammedConfig):
        super().__init__(config)
        self.encoder = Encoder(config)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                segment_ids: torch.Tensor | None = None, return_dict: bool | None = None) -> MaskedLMOutput:
        hidden = self.encoder(input_ids, attention_mask, token_type_ids, segment_ids)
        logits = F.linear(hidden, self.encoder.embeddings.word.weight)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits)


class CrammedForSequenceClassification(CrammedPreTrainedModel):
    """Encoder + pooled head: first token (or masked mean) -> Linear(hidden, head_dim) -> tanh -> dropout ->
    Linear(head_dim, num_labels). num_labels=1 is regression (MSE), else cross-entropy."""

    def __init__(self, config: CrammedConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = Encoder(config)
        self.pool = nn.Linear(config.hidden_size, config.head_dim)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.head_dim, config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                return_dict: bool | None = None) -> SequenceClassifierOutput:
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)
        logits = self.out(self.drop(torch.tanh(self.pool(pool_tokens(hidden, attention_mask, self.config.pool)))))
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.float().squeeze(-1), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
