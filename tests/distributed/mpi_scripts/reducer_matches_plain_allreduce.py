"""Run by test_mpi.py under `mpiexec -n 2`: the bucketed, overlapped GradientReducer gives bit for bit what one
plain allreduce per parameter gives, on a tiny BERT classifier with a different batch per rank, a frozen
parameter, a parameter only rank 0 uses and two accumulated micro-batches; after clipping and AdamW the ranks'
weights are identical. Then the same with the word embedding averaged by its touched rows (row_sparse)."""
import numpy as np

from minitransfer.distributed import GradientReducer, broadcast_parameters, check_identical, get_communicator
from minitransfer.errors import TrainingError
from minitransfer.models import BertForSequenceClassification, ModelConfig
from minitransfer.nn import Parameter
from minitransfer.optim import AdamW, clip_grad_norm_
from minitransfer.seeding import manual_seed

comm = get_communicator()
rank = comm.rank
manual_seed(rank)  # different weights on each rank until the broadcast
model = BertForSequenceClassification(ModelConfig(
    "bert", num_labels=2, vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
frozen = model.bert.embeddings.token_type_embeddings.weight
frozen.requires_grad = False
extra = Parameter(np.ones(3, np.float32))  # first: its bucket is the last one
named = [("extra", extra), *model.named_parameters()]
params = [p for _, p in named]

try:
    check_identical(named, comm)
    raise AssertionError("different weights passed the check")
except TrainingError as e:
    assert "differ" in str(e), e
broadcast_parameters(params, comm)
check_identical(named, comm)

rng = np.random.default_rng(100 + rank)  # each rank its own data


def batch():
    lengths = rng.integers(3, 11, 4)
    mask = (np.arange(10)[None] < lengths[:, None]).astype(np.int64)
    return {"input_ids": rng.integers(1, 50, (4, 10)) * mask, "attention_mask": mask, "labels": rng.integers(0, 2, 4)}


def loss_of(b):
    loss = model(**b).loss
    return loss + (extra * extra).sum() if rank == 0 else loss  # `extra` gets no gradient on rank 1


micro_batches = [batch(), batch()]
local = {}  # each gradient as this rank's backward finished it (a hook registered before the reducer's)
for p in params:
    p.register_grad_ready_hook(lambda t: local.__setitem__(id(t), t.grad.numpy().copy()))
reducer = GradientReducer(params, comm, bucket_bytes=2048)
assert len(reducer.buckets) >= 5 and all(frozen is not p for b in reducer.buckets for p in b.params)
with reducer.no_sync():
    loss_of(micro_batches[0]).backward()
loss_of(micro_batches[1]).backward()
overlapped = reducer.overlapped_buckets
reducer.finish()
assert frozen.grad is None and (id(extra) in local) == (rank == 0)

for p in params:  # the reference: one plain allreduce per parameter of the same local gradients
    if not p.requires_grad:
        continue
    g = local.get(id(p), np.zeros(p.shape, p.dtype))
    comm.allreduce(g)
    g /= comm.size
    np.testing.assert_array_equal(p.grad.numpy(), g)
assert overlapped >= 1, overlapped  # some buckets were reduced while backward was still running

optimizer = AdamW([p for p in params if p.requires_grad], lr=1e-2, weight_decay=0.01)
clip_grad_norm_(params, 0.5)
optimizer.step()
check_identical(named, comm)
print(f"rank {rank}: {len(reducer.buckets)} buckets, {overlapped} started during backward; identical", flush=True)

# The word embedding averaged by the rows each rank's batch touches (row_sparse): the same as the dense average.
reducer.remove()
word = model.bert.embeddings.word_embeddings.weight
sparse = GradientReducer(params, comm, bucket_bytes=2048, row_sparse=[word])
assert all(word is not p for b in sparse.buckets for p in b.params)
for p in params:
    p.grad = None
local.clear()
b = batch()
loss_of(b).backward()
sparse.finish({id(word): b["input_ids"].ravel()})
for p in params:
    if not p.requires_grad:
        continue
    g = local.get(id(p), np.zeros(p.shape, p.dtype))
    comm.allreduce(g)
    g /= comm.size
    np.testing.assert_array_equal(p.grad.numpy(), g, err_msg=f"{[n for n, q in named if q is p]}")
print(f"rank {rank}: row-sparse word embedding equals the dense average", flush=True)
