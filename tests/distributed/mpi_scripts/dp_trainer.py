"""The Trainer on the toy data, 20 steps of global batch 32, a checkpoint every 10 steps: `dp_trainer.py OUT
PER_RANK_BATCH RESUME` (under mpiexec or alone). Dropout 0, so ranks and processes compare step by step."""
import sys

from tests.training.test_trainer import make_trainer

out, batch, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
trainer = make_trainer(out, dropout=0.0, max_steps=20, save_strategy="steps", save_steps=10, eval_strategy="no",
                       per_device_train_batch_size=batch)
trainer.train(resume_from_checkpoint=True if resume else None)
