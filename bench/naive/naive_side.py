"""The plain pipeline a user would write: a `transformers.Trainer` whose loss runs the teacher on every batch.

As the usual tutorials do it: every text tokenised padded to `max_length`, the student's layers copied by
hand, and `compute_loss` calling the teacher (eval mode, no_grad) on each batch, in training and in
evaluation alike, for alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE. The Trainer evaluates
and saves every epoch and keeps the best epoch by eval accuracy, as Distillery does. Runs one job:

    python -m bench.naive.naive_side JOB.json OUT.json
"""

import tempfile
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    EvalPrediction,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

from bench.naive.job import KDJob, child_main, peak_cuda_bytes
from engine.training.precision import choose_precision


class DistillationTrainer(Trainer):
    """A Trainer whose loss mixes the teacher's softened outputs with the labels."""

    def __init__(self, *args: Any, teacher: PreTrainedModel, temperature: float, alpha: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval()
        self.temperature = temperature
        self.alpha = alpha
        self.kl = nn.KLDivLoss(reduction="batchmean")

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """alpha * T^2 * KL(soft targets) + (1 - alpha) * the student's own cross-entropy."""
        student_output = model(**inputs)
        # The Trainer autocasts only the model it trains; the teacher needs the same precision by hand.
        with torch.no_grad(), self.accelerator.autocast():
            teacher_output = self.teacher(**inputs)
        t = self.temperature
        soft = self.kl(
            F.log_softmax(student_output.logits / t, dim=-1), F.softmax(teacher_output.logits / t, dim=-1)
        )
        loss = self.alpha * t**2 * soft + (1 - self.alpha) * student_output.loss
        return (loss, student_output) if return_outputs else loss


def build_student(job: KDJob, labels: PretrainedConfig) -> PreTrainedModel:
    """The source model with a classifier for the teacher's labels, cut down to the job's layers."""
    set_seed(job.seed)
    student = AutoModelForSequenceClassification.from_pretrained(
        job.student_source(), num_labels=labels.num_labels, id2label=labels.id2label, label2id=labels.label2id
    )
    encoder = student.base_model.encoder
    encoder.layer = nn.ModuleList(encoder.layer[index] for index in job.layers)
    student.config.num_hidden_layers = len(job.layers)
    return student


def tokenised(
    path: str, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int], max_length: int, cache: Path
) -> datasets.Dataset:
    """A JSONL file of text and label, every text padded to `max_length`."""
    rows = datasets.load_dataset("json", data_files=path, split="train", cache_dir=str(cache))

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer(batch["text"], padding="max_length", truncation=True, max_length=max_length)
        encoded["labels"] = [label2id[str(label)] for label in batch["label"]]
        return dict(encoded)

    return rows.map(encode, batched=True, remove_columns=rows.column_names)


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """Share of rows whose highest logit is the label."""
    logits = prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    return {"accuracy": float((np.asarray(logits).argmax(-1) == prediction.label_ids).mean())}


def training_arguments(job: KDJob, output_dir: Path, *, bf16: bool) -> TrainingArguments:
    """The job's hyperparameters; evaluate and save each epoch, keep the best by eval accuracy."""
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=job.batch_size,
        per_device_eval_batch_size=job.batch_size,
        learning_rate=job.learning_rate,
        num_train_epochs=job.epochs,
        warmup_steps=job.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=job.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        bf16=bf16,
        use_cpu=job.device == "cpu",
        seed=job.seed,
        report_to="none",
        disable_tqdm=True,
    )


def run(job: KDJob) -> dict[str, Any]:
    """Train and measure the student; `train_seconds` spans trainer.train() and saving the student."""
    started = time.perf_counter()
    device = torch.device(job.device)
    precision = choose_precision(job.plain_precision, device)
    tokenizer = AutoTokenizer.from_pretrained(job.student_source())
    teacher = AutoModelForSequenceClassification.from_pretrained(job.teacher_dir).to(device)
    student = build_student(job, teacher.config)
    label2id = {str(name): int(index) for name, index in teacher.config.label2id.items()}
    with tempfile.TemporaryDirectory(prefix="naive-kd-") as scratch:
        root = Path(scratch)
        train, evaluation, test = (
            tokenised(path, tokenizer, label2id, job.max_length, root / "datasets")
            for path in (job.train_file, job.eval_file, job.test_file)
        )
        trainer = DistillationTrainer(
            model=student,
            args=training_arguments(job, root / "output", bf16=precision.precision == "bf16"),
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=tokenizer,
            compute_metrics=accuracy,
            teacher=teacher,
            temperature=job.temperature,
            alpha=job.alpha,
        )
        train_started = time.perf_counter()
        trainer.train()
        trainer.save_model(str(root / "student"))
        train_seconds = time.perf_counter() - train_started
        eval_accuracy = trainer.evaluate()["eval_accuracy"]
        test_accuracy = trainer.evaluate(test, metric_key_prefix="test")["test_accuracy"]
    return {
        "side": "plain",
        "train_seconds": train_seconds,
        "job_seconds": time.perf_counter() - started,
        "train_examples": len(train),
        "epochs": job.epochs,
        "steps": trainer.state.global_step,
        "eval_accuracy": eval_accuracy,
        "test_accuracy": test_accuracy,
        "precision": precision.precision,
        "device": str(trainer.args.device),
        "peak_cuda_bytes": peak_cuda_bytes(job.device),
    }


if __name__ == "__main__":
    child_main(run)
