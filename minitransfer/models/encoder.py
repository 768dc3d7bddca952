"""What the BERT and DistilBERT bodies share: the activation table, the loop over the blocks, and the body's call
(checked inputs → embeddings → blocks → outputs) on the padded or the padding-free path (nn/packing.py)."""
from __future__ import annotations

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.models.inputs import check_inputs, flattened_bounds
from minitransfer.models.outputs import ModelOutput, body_output
from minitransfer.models.pretrained import PreTrainedModel
from minitransfer.nn import Embedding, Module, ModuleList
from minitransfer.nn.packing import first_tokens, pack_inputs

ACTIVATIONS = {"gelu": ops.gelu, "relu": ops.relu}  # config.hidden_act (BERT) / config.activation (DistilBERT)


class Encoder(Module):
    """The blocks, lowest first, named `layer.0`, `layer.1`, ... (BERT's `encoder`, DistilBERT's `transformer`)."""

    def __init__(self, blocks):
        super().__init__()
        self.layer = ModuleList(blocks)

    def forward(self, x: Tensor, mask, output_hidden_states: bool = False, output_attentions: bool = False):
        """(last hidden state, extras); extras holds, when asked, "hidden_states" (every block's input and output)
        and "attentions" (each block's probabilities (B, heads, S, S)).

        mask: the PackedTokens of a packed x (T, H), or the key padding mask (B, S) of a padded x (B, S, H)."""
        states, attentions = [x], ([] if output_attentions else None)
        for block in self.layer:
            x = block(x, mask, attentions)
            states.append(x)
        extras = {}
        if output_hidden_states:
            extras["hidden_states"] = tuple(states)
        if output_attentions:
            extras["attentions"] = tuple(Tensor(a) for a in attentions)
        return x, extras


class EncoderModel(PreTrainedModel):
    """A body: `embeddings`, then an Encoder of post-LN blocks under `encoder_name`, and (BERT) a `pooler`.

    Call with input_ids (B, S)[, attention_mask, token_type_ids (BERT only), position_ids, each (B, S)], or a
    flattened batch: input_ids (1, T) with cu_seq_lens_q (or position_ids restarting at 0 per sequence).
    Returns ModelOutput(last_hidden_state (B, S, H), zeros at padding; pooler_output (B, H) when there is a pooler,
    one row per sequence; hidden_states / attentions if asked). With config.padding_free (the default) only the
    real tokens are computed.
    """

    encoder_name = "encoder"  # transformers' name for the Encoder: "encoder" in BERT, "transformer" in DistilBERT
    token_types = True  # False: token_type_ids are dropped (tokenizers return them for every WordPiece vocab)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened) -> ModelOutput:
        hidden, packed, extras = self.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                             output_hidden_states, output_attentions, **flattened)
        out = body_output(hidden, packed, extras)
        pooler = getattr(self, "pooler", None)
        if pooler is not None:
            out.pooler_output = pooler(first_tokens(hidden, packed))
        return out

    def encode(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
               output_hidden_states: bool = False, output_attentions: bool = False, **flattened):
        """(hidden, packed, extras): the real tokens' hidden states (T, H) and their PackedTokens, or on the padded
        path (padding_free=False) hidden (B, S, H) and None; extras: hidden_states / attentions if asked."""
        types = token_type_ids if self.token_types else None
        ids, mask, types, positions = check_inputs(self.config, self.device, input_ids, attention_mask, types,
                                                   position_ids)
        packed = pack_inputs(ids, mask, positions, flattened_bounds(flattened), self.config.padding_free)
        if packed is not None:  # rows of real tokens (T,); attention keeps each sequence to itself
            ids, types, positions, mask = packed.pack(ids), packed.pack(types), packed.position_ids, packed
        hidden = self.embeddings(ids, types, positions) if self.token_types else self.embeddings(ids, positions)
        hidden, extras = getattr(self, self.encoder_name)(hidden, mask, output_hidden_states, output_attentions)
        return hidden, packed, extras

    def blocks(self) -> list[Module]:
        """The transformer blocks, lowest first."""
        return list(getattr(self, self.encoder_name).layer)

    def get_input_embeddings(self) -> Embedding:
        return self.embeddings.word_embeddings
