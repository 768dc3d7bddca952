"""Domain adaptation commands: train mlm, perplexity, zero-shot (and --few-shot), probe-bias, distill.

`fill-mask --compare BASE ADAPTED` lives with fill-mask (model_commands) and prints through `print_fill_mask_compare`.
"""
from __future__ import annotations

import argparse
import json

from minitransfer.cli import HelpFormatter, UsageError
from minitransfer.cli.training_options import FORMATS, add_training_flags, printing_callbacks, training_arguments

PERPLEXITY_HELP = ("held-out figures are masked-LM pseudo-perplexity: exp(mean MLM loss) over one fixed, seeded 15% "
                   "masking of the held-out text (the same positions for every model), not a left-to-right perplexity")


def register(commands, train_tasks) -> None:
    register_train_mlm(train_tasks)
    register_perplexity(commands)
    register_zero_shot(commands)
    register_probe_bias(commands)
    register_distill(commands)


# ---- train mlm / perplexity ----
def register_train_mlm(train_tasks) -> None:
    p = train_tasks.add_parser("mlm", help="masked-LM training on a domain corpus (domain adaptation)",
                               description="Continue masked-LM training on a text file (one document per line). "
                               "A checkpoint without an MLM head (MiniLM) gets a new one, reported by name. "
                               + PERPLEXITY_HELP + ".", conflict_handler="resolve",
                               formatter_class=HelpFormatter)
    add_training_flags(p, batch_size=16, epochs=1)
    p.add_argument("--text", "--train", dest="train", required=True, help="UTF-8 text file, one document per line")
    p.add_argument("--eval-text", "--eval", dest="eval",
                   help="held-out text file (default: the last --holdout fraction of --text)")
    p.add_argument("--holdout", type=float, default=0.1,
                   help="fraction of --text lines, taken from its end, held out for perplexity (0: none)")
    p.add_argument("--max-train-examples", type=int,
                   help="train on a seeded random N of the lines left after the hold-out (kept in file order)")
    p.add_argument("--max-eval-examples", type=int, help="use only the first N held-out lines")
    p.add_argument("--windows-per-text", type=int, default=1,
                   help="windows of --max-length tokens kept per document: 1 truncates, 0 keeps all")
    p.add_argument("--mlm-probability", type=float, default=0.15, help="fraction of the tokens masked (BERT's 15%%)")
    p.add_argument("--whole-word-mask", action="store_true", help="mask a word's WordPiece pieces together")
    p.add_argument("--head-only", action="store_true", help="freeze the body and train only the MLM head")
    p.add_argument("--perplexity-seed", type=int, default=0, help="seed of the fixed held-out masking")
    p.set_defaults(func=train_mlm)


def train_mlm(args: argparse.Namespace) -> None:
    from minitransfer.tasks.mlm.recipe import train_mlm as run

    metrics = run(args.model, args.train, training_arguments(args, "perplexity", greater_is_better=False),
                  eval_text_file=args.eval, holdout=args.holdout, max_length=args.max_length,
                  windows_per_text=args.windows_per_text, whole_word=args.whole_word_mask,
                  mlm_probability=args.mlm_probability, head_only=args.head_only,
                  max_train_examples=args.max_train_examples, max_eval_examples=args.max_eval_examples,
                  perplexity_seed=args.perplexity_seed, resume=args.resume, callbacks=printing_callbacks())
    if "perplexity_before" in metrics:
        print(f"held-out masked-LM pseudo-perplexity: before {metrics['perplexity_before']:.2f}, "
              f"after {metrics['perplexity_after']:.2f} ({metrics['heldout_masked_tokens']:,} masked tokens, "
              f"{metrics['heldout_lines']} held-out lines)")
    print(json.dumps(metrics, indent=2))


def register_perplexity(commands) -> None:
    p = commands.add_parser("perplexity", help="masked-LM pseudo-perplexity of a model on a text file",
                            description=PERPLEXITY_HELP + ".", formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="model directory with an MLM head (or cached alias)")
    p.add_argument("--text", required=True, help="UTF-8 text file, one document per line")
    p.add_argument("--holdout", type=float, default=0.0,
                   help="score only the last fraction of the lines (as `train mlm --holdout` holds them out)")
    p.add_argument("--max-examples", type=int, help="use only the first N lines scored")
    p.add_argument("--max-length", type=int, default=128, help="tokens per window")
    p.add_argument("--windows-per-text", type=int, default=1,
                   help="windows of --max-length tokens kept per document: 1 truncates, 0 keeps all")
    p.add_argument("--seed", type=int, default=0, help="seed of the fixed masking (train mlm: --perplexity-seed)")
    p.add_argument("--allow-new-head", action="store_true", help="score a headless checkpoint with a random head")
    p.set_defaults(func=perplexity)


def perplexity(args: argparse.Namespace) -> None:
    from minitransfer.tasks.mlm.recipe import evaluate_perplexity

    print(json.dumps(evaluate_perplexity(args.model, args.text, args.holdout, args.max_length, args.windows_per_text,
                                         args.max_examples, args.seed, allow_new_head=args.allow_new_head), indent=2))


# ---- fill-mask --compare ----
def print_fill_mask_compare(base: str, adapted: str, text: str, top_k: int = 5) -> None:
    """Both models' top-k for each [MASK] of `text`, side by side."""
    from minitransfer import AutoModelForMaskedLM, AutoTokenizer
    from minitransfer.tasks.mlm.fill_mask import fill_mask

    columns = []
    for path in (base, adapted):
        columns.append(fill_mask(AutoModelForMaskedLM.from_pretrained(path), AutoTokenizer.from_pretrained(path),
                                 text, top_k))
    print(f"BASE:    {base}\nADAPTED: {adapted}")
    for i, (left, right) in enumerate(zip(*columns)):
        print(f"\n[MASK] {i + 1} of {len(columns[0])}: {text}")
        print(f"{'':<4}{'base':<18}{'score':>8}    {'adapted':<18}{'score':>8}")
        for rank, (a, b) in enumerate(zip(left, right), start=1):
            print(f"{rank:<4}{a['token_str']:<18}{a['score']:>8.4f}    {b['token_str']:<18}{b['score']:>8.4f}")


# ---- zero-shot / few-shot ----
def register_zero_shot(commands) -> None:
    p = commands.add_parser(
        "zero-shot", conflict_handler="resolve",
        help="classify with an MLM model through a pattern and verbalizer: no training, or --few-shot K",
        description="Zero-shot: score each label word's MLM logit at the [MASK] of the pattern. With --few-shot K "
        "(e.g. 16,64): fine-tune the whole MLM model on K balanced training examples per seed with cross-entropy "
        "over the label words' logits (PET), no model selection on --data, which is scored once at the end. "
        "A model without an MLM head (MiniLM) starts from a random head: adapt it first with `train mlm`.",
        formatter_class=HelpFormatter)
    add_training_flags(p, batch_size=8, epochs=1, lr=2e-5)
    p.add_argument("--data", "--eval", dest="eval", required=True, help="labeled evaluation file (e.g. SST-2 dev.tsv)")
    p.add_argument("--train", help="labeled training file the K examples are drawn from (needed with --few-shot)")
    p.add_argument("--out", default="few-shot-runs", help="output directory of --few-shot runs")
    p.add_argument("--max-steps", type=int, default=100, help="optimizer steps per few-shot run")
    p.add_argument("--few-shot", help="comma-separated K values, e.g. 16,64")
    p.add_argument("--seeds", default="0", help="comma-separated seeds: one K-example sample and run each")
    p.add_argument("--pattern", help='prompt with {text} and one [MASK] (default "{text} It was [MASK].")')
    p.add_argument("--verbalizer", default=None,
                   help="one word per label, in label-id order, comma-separated (default: terrible,great)")
    p.add_argument("--compare-classifier", action="store_true",
                   help="also fine-tune a classification head on the same K examples (same steps, same protocol)")
    p.add_argument("--format", choices=FORMATS, help="file layout of --data and --train (detected when omitted)")
    p.set_defaults(func=zero_shot)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values:
        raise UsageError(f"{flag} is empty")
    return values


def zero_shot(args: argparse.Namespace) -> None:
    from minitransfer.tasks.prompting.prompts import DEFAULT_PATTERN, DEFAULT_VERBALIZER
    from minitransfer.tasks.prompting.recipe import few_shot_sweep
    from minitransfer.tasks.prompting.recipe import zero_shot as run_zero_shot

    if args.resume:
        raise UsageError("zero-shot runs keep no checkpoint to resume: rerun without --resume")
    if args.few_shot and not args.train:
        raise UsageError("--few-shot needs --train: the labeled file the K examples are drawn from")
    ks = _int_list(args.few_shot, "--few-shot") if args.few_shot else []
    seeds = _int_list(args.seeds, "--seeds")
    pattern = args.pattern or DEFAULT_PATTERN
    verbalizer = [w.strip() for w in args.verbalizer.split(",")] if args.verbalizer else list(DEFAULT_VERBALIZER)
    if not args.few_shot:
        metrics = run_zero_shot(args.model, args.eval, pattern, verbalizer, args.format, args.max_length,
                                args.max_eval_examples)
        note = " (random MLM head: this model had none)" if metrics["random_head"] else ""
        print(f"zero-shot accuracy {metrics['accuracy']:.4f} on {metrics['examples']} examples{note}; "
              f"predicted per label {metrics['predicted_counts']}")
        print(json.dumps(metrics, indent=2))
        return
    result = few_shot_sweep(args.model, args.train, args.eval, ks, seeds, training_arguments(args), pattern, verbalizer,
                            args.format, args.max_length, args.max_eval_examples, args.compare_classifier,
                            printing_callbacks())
    print(f"\n{'method':<12}{'k':>6}{'mean acc':>10}{'std':>8}{'runs':>6}")
    for method, by_k in result["summary"].items():
        for k, (mean, std, n) in by_k.items():
            print(f"{method:<12}{k:>6}{mean:>10.4f}{std:>8.4f}{n:>6}")


# ---- probe-bias ----
def register_probe_bias(commands) -> None:
    p = commands.add_parser(
        "probe-bias", help="compare fill-mask predictions on paired templates (He / She was very [MASK].)",
        description="For each template pair, prints the words whose probability at the mask rises most with each "
        "template and the total-variation distance between the two distributions, for every --model given "
        "(repeat --model to compare, e.g. the base and the adapted model).", formatter_class=HelpFormatter)
    p.add_argument("--model", action="append", required=True,
                   help="model directory with an MLM head; repeat to compare (e.g. --model BASE --model ADAPTED)")
    p.add_argument("--templates", help="file of extra pairs: one 'template<TAB>template' per line, one [MASK] each")
    p.add_argument("--no-builtin", action="store_true", help="use only the pairs of --templates")
    p.add_argument("--top", type=int, default=5, help="words shown per direction")
    p.add_argument("--json", help="also write every result to this JSON file")
    p.set_defaults(func=probe_bias)


def probe_bias(args: argparse.Namespace) -> None:
    from minitransfer import AutoModelForMaskedLM, AutoTokenizer
    from minitransfer.tasks.mlm.bias_probe import BUILTIN_TEMPLATES, read_template_pairs
    from minitransfer.tasks.mlm.bias_probe import probe_bias as run

    if args.no_builtin and not args.templates:
        raise UsageError("--no-builtin without --templates leaves no template pair to probe")
    pairs = [] if args.no_builtin else list(BUILTIN_TEMPLATES)
    if args.templates:
        pairs += read_template_pairs(args.templates)  # raises on an empty file
    results = {}
    for path in args.model:
        results[path] = run(AutoModelForMaskedLM.from_pretrained(path), AutoTokenizer.from_pretrained(path), pairs,
                            args.top)
    for i, (first, second) in enumerate(pairs):
        print(f"\n{first}  |  {second}")
        for path in args.model:
            r = results[path][i]
            toward = [", ".join(f"{w} {a:.3f}/{b:.3f}" for w, a, b in r[key])
                      for key in ("toward_first", "toward_second")]
            print(f"  {path}: total variation {r['total_variation']:.3f}\n"
                  f"    more likely with the first:  {toward[0]}\n    more likely with the second: {toward[1]}")
    print("\nmean total variation over the pairs: " + "; ".join(
        f"{path} {sum(r['total_variation'] for r in results[path]) / len(pairs):.3f}" for path in args.model))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


# ---- distill ----
def register_distill(commands) -> None:
    p = commands.add_parser(
        "distill", conflict_handler="resolve",
        help="train a smaller student to imitate a fine-tuned classifier (soft targets at temperature T + hard labels)",
        description="loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels). The teacher "
        "is a classifier directory from `train classification`; the student a body (e.g. from `convert "
        "bert-to-distilbert`) that gets a new head. Prints both accuracies and inference speeds, measured in this run.",
        formatter_class=HelpFormatter)
    add_training_flags(p)
    p.add_argument("--teacher", required=True, help="fine-tuned classifier directory")
    p.add_argument("--student", "--model", dest="model", required=True, help="student model directory")
    p.add_argument("--eval", required=True, help="labeled evaluation file")
    p.add_argument("--temperature", type=float, default=2.0, help="softmax temperature T of the soft targets")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the soft-target loss (1 - alpha: hard labels)")
    p.add_argument("--format", choices=FORMATS, help="file layout of --train and --eval (detected when omitted)")
    p.add_argument("--speed-repeats", type=int, default=2, help="timed passes over --eval per model (best kept)")
    p.set_defaults(func=distill)


def distill(args: argparse.Namespace) -> None:
    from minitransfer.tasks.distillation.recipe import distill as run

    result = run(args.teacher, args.model, args.train, args.eval, training_arguments(args), args.temperature,
                 args.alpha, args.format, args.max_length, args.max_train_examples, args.max_eval_examples,
                 args.speed_repeats, printing_callbacks())
    print(f"\n{'':<9}{'accuracy':>10}{'examples/s':>12}{'parameters':>14}")
    for who in ("teacher", "student"):
        print(f"{who:<9}{result[who + '_accuracy']:>10.4f}{result[who + '_examples_per_s']:>12.1f}"
              f"{result[who + '_parameters']:>14,}")
    print(f"student keeps {result['accuracy_kept']:.1%} of the teacher's accuracy at {result['speedup']:.2f}x its "
          "speed "
          f"({result['eval_examples']} eval examples, batch {result['eval_batch_size']})")
    print(json.dumps(result, indent=2))
