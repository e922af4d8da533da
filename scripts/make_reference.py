#!/usr/bin/env python3
"""Reference values from PyTorch `transformers` for the tests of crates/longtail-model.

Needs: pip install torch transformers tokenizers safetensors numpy

Modes
  (default)            The committed MiniLM fixture of tests/parity_minilm.rs: all-MiniLM-L6-v2's
                       last hidden states and pooler output (transformers, eager attention, fp32)
                       on the texts of crates/longtail-model/tests/fixtures/minilm_texts.json
                       (written for the test, not catalogue rows), with the ids of the Python
                       `tokenizers` package, into fixtures/minilm_reference.safetensors (~0.5 MB).
                       Needs the base model in checkpoints/base/all-MiniLM-L6-v2 (`make setup`).
  --fixtures           Small committed fixtures in crates/longtail-model/tests/fixtures/: a tiny
                       random BertForSequenceClassification with its PyTorch outputs, and
                       cross-entropy cases (loss and gradient) from torch.nn.functional.
  --check-saved DIR    Loads DIR (written by the Rust `save_pretrained`) with
                       transformers.AutoModelForSequenceClassification and compares its logits with
                       DIR/longtail_expected.safetensors (written by examples/save_for_hf_check.rs
                       or tests/train_cli.rs).
Training speed against PyTorch is `make bench` (scripts/bench_torch.py train).
"""
import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "checkpoints/base/all-MiniLM-L6-v2"
FIXTURES = ROOT / "crates/longtail-model/tests/fixtures"
MINILM_TEXTS = FIXTURES / "minilm_texts.json"
MINILM_REFERENCE = FIXTURES / "minilm_reference.safetensors"


def tokenize(tokenizer_json, texts, max_len=128):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest of the batch
    enc = tok.encode_batch(texts)
    return (
        [e.ids for e in enc],
        [e.attention_mask for e in enc],
        [e.type_ids for e in enc],
    )


def minilm_reference(model_dir, out):
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import BertModel

    with open(MINILM_TEXTS, encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    ids, mask, types = tokenize(model_dir / "tokenizer.json", texts)
    torch.set_num_threads(1)  # one summation order, whatever the machine
    model = BertModel.from_pretrained(str(model_dir), attn_implementation="eager").eval().float()
    input_ids = torch.tensor(ids, dtype=torch.int64)
    attention_mask = torch.tensor(mask, dtype=torch.int64)
    token_type_ids = torch.tensor(types, dtype=torch.int64)
    with torch.no_grad():
        o = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "last_hidden_state": o.last_hidden_state.contiguous(),
            "pooler_output": o.pooler_output.contiguous(),
        },
        str(out),
        metadata={
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "texts_sha256": hashlib.sha256("\n".join(texts).encode()).hexdigest(),
            "texts": MINILM_TEXTS.name,
            "model_sha256": hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest(),
        },
    )
    print(f"wrote {out}: input_ids {tuple(input_ids.shape)}, last_hidden_state {tuple(o.last_hidden_state.shape)}")


def fixtures():
    import torch
    import torch.nn.functional as F
    import transformers
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForSequenceClassification

    FIXTURES.mkdir(parents=True, exist_ok=True)

    # 1. tiny random BertForSequenceClassification, saved the transformers way
    torch.manual_seed(1234)
    cfg = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        type_vocab_size=2,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        id2label={0: "head", 1: "torso", 2: "tail"},
        label2id={"head": 0, "torso": 1, "tail": 2},
        initializer_range=0.2,  # larger than BERT's 0.02 so every layer matters in the outputs
    )
    model = BertForSequenceClassification(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias values
        for n, p in model.named_parameters():
            if n.endswith("bias") or "LayerNorm" in n:
                p.add_(0.1 * torch.randn_like(p))
    tiny_dir = FIXTURES / "tiny_bert"
    model.save_pretrained(str(tiny_dir), safe_serialization=True)
    ids = torch.randint(1, 99, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[0, 5:] = 1
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    save_file(
        {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": types,
            "last_hidden_state": o.hidden_states[-1].contiguous(),
            "logits": o.logits.contiguous(),
        },
        str(FIXTURES / "tiny_bert_expected.safetensors"),
        metadata={"torch": torch.__version__, "transformers": transformers.__version__},
    )

    # 2. cross-entropy cases: loss and d loss / d logits from torch
    torch.manual_seed(7)
    cases = []
    for n, c, weighted, eps in [(5, 3, False, 0.0), (5, 3, True, 0.0), (6, 4, False, 0.1), (7, 4, True, 0.2), (4, 2, True, 0.05)]:
        logits = (2.0 * torch.randn(n, c, dtype=torch.float64)).requires_grad_()
        labels = torch.randint(0, c, (n,))
        w = (torch.rand(c, dtype=torch.float64) * 3 + 0.1) if weighted else None
        loss = F.cross_entropy(logits, labels, weight=w, label_smoothing=eps)
        loss.backward()
        cases.append(
            {
                "logits": logits.detach().tolist(),
                "labels": labels.tolist(),
                "class_weights": None if w is None else w.tolist(),
                "label_smoothing": eps,
                "loss": loss.item(),
                "grad": logits.grad.tolist(),
            }
        )
    with open(FIXTURES / "cross_entropy_torch.json", "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote fixtures into {FIXTURES}")


def check_saved(d):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    d = Path(d)
    exp = load_file(str(d / "longtail_expected.safetensors"))
    model = AutoModelForSequenceClassification.from_pretrained(str(d), attn_implementation="eager").eval()
    print(f"loaded {type(model).__name__}, num_labels={model.config.num_labels}, id2label={model.config.id2label}")
    with torch.no_grad():
        logits = model(input_ids=exp["input_ids"], attention_mask=exp["attention_mask"]).logits
    diff = (logits - exp["logits"]).abs().max().item()
    print(f"max |logits_transformers - logits_longtail| = {diff:.3e}")
    if diff > 1e-4:
        sys.exit("MISMATCH")
    print("OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--fixtures", action="store_true")
    g.add_argument("--check-saved", metavar="DIR")
    ap.add_argument("--model", type=Path, default=Path(os.environ.get("LONGTAIL_TEST_BASE_MODEL", MODEL_DIR)))
    ap.add_argument("--out", type=Path, default=MINILM_REFERENCE)
    a = ap.parse_args()
    if a.fixtures:
        fixtures()
    elif a.check_saved:
        check_saved(a.check_saved)
    else:
        minilm_reference(a.model, a.out)


if __name__ == "__main__":
    main()
