"""The causal-LM demo: chats about tweets, a GPT-2-style teacher, three ways to distil it, each with control.

The tweets become chats in OpenAI's `messages` format: a user asks for a tweet's sentiment or for the
rest of a tweet of a given sentiment, and the assistant answers. Two BPE tokenizers are trained on the
train chats: a byte-level one (GPT-2's kind) for the teacher and two of the students, and one over
Metaspace pieces for the third student, so that the two vocabularies differ. Through the embedded
service, a 4-layer teacher is trained on the chats from its config, then three 2-layer students learn
from it, each with `control: true` (the same student, data, seed and steps without the teacher, as a
linked job):

- token-level KD (`response`) from the teacher's top-k log-probabilities, stored once in the teacher cache;
- on-policy KD (`gkd`, forward KL): half of the batches are the student's own sampled answers, scored by
  the teacher;
- cross-tokenizer KD (`response` with `cross_tokenizer: uld`) into the student with the other vocabulary.

The loss is taken on the assistant turns. The table gives each student's test perplexity, its top-1
agreement with the teacher (from the job's `result.language_model`) and its gain in perplexity over its
control (`result.control.gain`), with the teacher cache's bytes per stored token. Writes
`bench/results/lm_demo.json`.

    python -m bench.lm.demo            # the full run (scripts/demo --lm)
    python -m bench.lm.demo --quick    # 1,000 train tweets and one epoch per job
"""

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import AutoTokenizer

from app.cli.quickstart.comparison import Datasets, finish_job, job_seconds, run_to_end, upload
from app.cli.quickstart.service import embedded_service
from app.cli.quickstart.tweets import Splits, write_splits
from bench.lm.bases import EOS, install_base_model, install_metaspace_base
from bench.paths import RESULTS
from bench.result_file import write_result
from distillery.client import DistilleryClient

# The same template for both tokenizers, so the teacher reads a student's chat as it was trained. The
# space before an answer belongs to the answer's turn, so the prompt ends where both tokenizers cut.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if not loop.first %}{{ '\\n' }}{% endif %}"
    "{{ message['role'] + ': ' + message['content'] + eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '\\nassistant:' if messages else 'assistant:' }}{% endif %}"
)
TEACHER_BASE, PIECES_BASE = "gpt2-chat", "gpt2-chat-pieces"
STUDENTS = ("response", "gkd", "uld")


@dataclass(frozen=True)
class Scale:
    """How much data, how large the models and how long each job trains."""

    train_rows: int = 4000
    eval_rows: int = 500
    test_rows: int = 1000
    vocab_size: int = 4096
    pieces_vocab_size: int = 3072
    width: int = 256
    teacher_layers: int = 4
    student_layers: int = 2
    teacher_epochs: int = 3
    student_epochs: int = 2
    batch_size: int = 32
    max_length: int = 96
    learning_rate: float = 1e-3
    top_k: int = 64
    new_tokens: int = 32
    # Forward KL: perplexity is a forward cross-entropy, and GKD's JSD (beta 0.5) cost it 112 points here.
    gkd_beta: float = 0.0


QUICK = Scale(train_rows=1000, eval_rows=200, test_rows=300, teacher_epochs=1, student_epochs=1)


def chat(index: int, tweet: dict[str, str]) -> list[dict[str, str]]:
    """One tweet as a chat: every other one asks for its sentiment, the rest for how it goes on."""
    words = tweet["text"].split()
    if index % 2 == 0 and len(words) >= 4:
        cut = max(1, len(words) // 3)
        question = f"Continue this {tweet['label']} tweet: {' '.join(words[:cut])}"
        answer = " ".join(words[cut:])
    else:
        question, answer = f"What is the sentiment of this tweet? {tweet['text']}", tweet["label"]
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def write_chats(splits: Splits, out_dir: Path) -> dict[str, Path]:
    """Each split as chat JSONL, and the train chats as plain text (`tokenizer-texts`) to train BPEs on."""
    files: dict[str, Path] = {}
    texts = []
    for name, split in (("train", splits.train), ("eval", splits.eval), ("test", splits.test)):
        lines = split.path.read_text(encoding="utf-8").splitlines()
        chats = [chat(index, json.loads(line)) for index, line in enumerate(lines)]
        files[name] = out_dir / f"chats-{name}.jsonl"
        files[name].write_text("".join(json.dumps({"messages": turns}) + "\n" for turns in chats))
        if name == "train":
            texts = ["\n".join(f"{turn['role']}: {turn['content']}" for turn in turns) for turns in chats]
    files["tokenizer"] = out_dir / "tokenizer-texts.jsonl"
    files["tokenizer"].write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    return files


def install_models(texts: Path, models_root: Path, scale: Scale) -> None:
    """The teacher's byte-level base and the third student's Metaspace base, both with the chat template."""
    sizes = {"layers": scale.teacher_layers, "width": scale.width}
    install_base_model(texts, models_root / TEACHER_BASE, vocab_size=scale.vocab_size, **sizes)
    install_metaspace_base(
        texts,
        models_root / PIECES_BASE,
        vocab_size=scale.pieces_vocab_size,
        eos=EOS,
        prepend_scheme="never",
        **sizes,
    )
    for name in (TEACHER_BASE, PIECES_BASE):
        tokenizer = AutoTokenizer.from_pretrained(models_root / name)
        tokenizer.chat_template = CHAT_TEMPLATE
        tokenizer.save_pretrained(models_root / name)


def job_specs(files: Datasets, teacher_job: str | None, scale: Scale) -> dict[str, dict[str, Any]]:
    """The teacher from its config; three students from the same 2-layer config, each with a control."""
    data = {
        "train_file": files.train_file,
        "eval_file": files.eval_file,
        "test_file": files.test_file,
        "format": "chat",
        "max_length": scale.max_length,
    }
    teacher = {
        "task": "causal_lm",
        "student": {
            "init": "config",
            "model": {"path": TEACHER_BASE},
            "config": {"num_hidden_layers": scale.teacher_layers},
        },
        "data": data,
        "method": {"type": "supervised"},
        "training": training_options(scale, scale.teacher_epochs),
    }
    students = {
        name: student_spec(base, method, data=data, teacher_job=teacher_job, scale=scale)
        for name, (base, method) in student_methods(scale).items()
    }
    return {"teacher": teacher, **students}


def training_options(scale: Scale, epochs: int) -> dict[str, Any]:
    """The training options every job of the demo shares, for this many epochs."""
    return {
        "epochs": epochs,
        "batch_size": scale.batch_size,
        "learning_rate": scale.learning_rate,
        "warmup_ratio": 0.05,
        "seed": 0,
    }


def student_methods(scale: Scale) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each student's base model and method: response KD, GKD, and ULD across tokenizers."""
    generation = {"max_new_tokens": scale.new_tokens, "temperature": 1.0}
    return {
        "response": (
            TEACHER_BASE,
            {
                "type": "response",
                "divergence": "forward_kl",
                "temperature": 1.0,
                "alpha": 0.8,
                "top_k": scale.top_k,
            },
        ),
        "gkd": (
            TEACHER_BASE,
            {
                "type": "gkd",
                "lmbda": 0.5,
                "beta": scale.gkd_beta,
                "temperature": 1.0,
                "generation": generation,
            },
        ),
        "uld": (
            PIECES_BASE,
            {"type": "response", "cross_tokenizer": "uld", "hybrid": True, "temperature": 1.0, "alpha": 0.2},
        ),
    }


def student_spec(
    base: str, method: dict[str, Any], *, data: dict[str, Any], teacher_job: str | None, scale: Scale
) -> dict[str, Any]:
    """A student's job: the base model's config cut to the student's layers, distilled with a control."""
    return {
        "task": "causal_lm",
        "teacher": {"job": teacher_job},
        "student": {
            "init": "config",
            "model": {"path": base},
            "config": {"num_hidden_layers": scale.student_layers},
        },
        "data": data,
        "method": method,
        "training": training_options(scale, scale.student_epochs),
        "control": True,
        "report": {"generations": 3, "max_new_tokens": 24},
    }


def finish_with_control(
    client: DistilleryClient, job_id: str, name: str, downloads: Path, console: Console
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Follow a job with `control: true` and then its linked control to the end; returns both, the job
    read again once the control's gain is in its result."""
    job = finish_job(client, job_id, name, downloads, console)
    control = finish_job(client, job["control_job_id"], f"{name}-control", downloads, console)
    return client.get_job(job_id), control


def run_demo(
    client: DistilleryClient, files: Datasets, scale: Scale, downloads: Path, console: Console
) -> dict[str, dict[str, Any]]:
    """The teacher job, then the three students and their controls; returns the finished jobs by role."""
    teacher_spec = job_specs(files, None, scale)["teacher"]
    jobs = {"teacher": run_to_end(client, teacher_spec, "lm-teacher", downloads, console)}
    specs = job_specs(files, jobs["teacher"]["id"], scale)
    # Queued together, so the worker runs them and their controls back to back.
    posted = {role: client.create_job(specs[role], name=f"lm-{role}")["id"] for role in STUDENTS}
    for role in STUDENTS:
        jobs[role], jobs[f"{role}_control"] = finish_with_control(
            client, posted[role], f"lm-{role}", downloads, console
        )
    return jobs


def cache_figures(job: dict[str, Any]) -> dict[str, Any] | None:
    """The job's teacher cache: status, bytes, tokens stored and bytes per token, where it stored any."""
    cache = job["result"]["training"].get("teacher_cache")
    if not cache or not cache.get("tokens"):
        return cache
    return {**cache, "bytes_per_token": cache["bytes"] / cache["tokens"]}


def student_row(job: dict[str, Any], control: dict[str, Any]) -> dict[str, Any]:
    """One student's figures: its language-model section, the teacher's, and the gain over its control."""
    result = job["result"]
    section = result["language_model"]
    summary = result["control"]
    return {
        "method": job["spec"]["method"],
        "vocabulary": section["tokenizers"]["student"]["vocabulary"],
        "split": section["split"],
        "student": section["student"],
        "teacher": section["teacher"],
        "aligned_fraction": section["aligned_fraction"],
        "control_perplexity": summary["control_metrics"]["perplexity"],
        "gain": summary["gain"],
        "generations": section["generations"],
        "teacher_cache": cache_figures(job),
        "jobs": {"student": job["id"], "control": control["id"]},
        "seconds": {"student": job_seconds(job), "control": job_seconds(control)},
    }


def summarize(jobs: dict[str, dict[str, Any]], scale: Scale) -> dict[str, Any]:
    """Every student's row, the teacher job's id and time, and the scale it ran at."""
    teacher = jobs["teacher"]
    return {
        "students": {role: student_row(jobs[role], jobs[f"{role}_control"]) for role in STUDENTS},
        "teacher": {"job": teacher["id"], "seconds": job_seconds(teacher)},
        "scale": asdict(scale),
    }


def format_table(summary: dict[str, Any]) -> str:
    """Perplexity, agreement with the teacher and gain over the control of each student."""
    header = (
        f"{'student':<9}{'vocab':>7}{'ppl':>9}{'bits/byte':>11}{'top-1 agree':>13}"
        f"{'control ppl':>13}{'gain (ppl)':>12}{'cache B/token':>15}"
    )
    rows = summary["students"]
    teacher = next(iter(rows.values()))["teacher"]
    lines = [
        f"{next(iter(rows.values()))['split']} split; teacher perplexity {teacher['perplexity']:.2f}, "
        f"{teacher['bits_per_byte']:.3f} bits per byte",
        header,
        "-" * len(header),
    ]
    for role, row in rows.items():
        student, cache = row["student"], row["teacher_cache"] or {"status": "-"}
        per_token = cache.get("bytes_per_token")
        stored = cache["status"] if per_token is None else f"{per_token:,.0f}"
        lines.append(
            f"{role:<9}{row['vocabulary']:>7}{student['perplexity']:>9.2f}{student['bits_per_byte']:>11.3f}"
            f"{student['top1_agreement']:>13.3f}{row['control_perplexity']:>13.2f}"
            f"{row['gain']['perplexity']:>+12.2f}{stored:>15}"
        )
    return "\n".join(lines)


def prepare(data_dir: Path, scale: Scale) -> tuple[Splits, dict[str, Path]]:
    """The tweet splits as chats, and the two base models trained on the train chats."""
    splits = write_splits(
        data_dir / "datasets",
        train_rows=scale.train_rows,
        eval_rows=scale.eval_rows,
        test_rows=scale.test_rows,
    )
    chats = write_chats(splits, data_dir / "datasets")
    install_models(chats["tokenizer"], data_dir / "models", scale)
    return splits, chats


def run(data_dir: Path, scale: Scale, *, port: int, console: Console) -> dict[str, Any]:
    """Prepare the data and models, run every job through the embedded service; returns the summary."""
    splits, chats = prepare(data_dir, scale)
    console.print(
        f"Tweets as chats: {splits.train.rows} train, {splits.eval.rows} eval, {splits.test.rows} test; "
        f"a {scale.vocab_size:,}-token byte-level BPE and a {scale.pieces_vocab_size:,}-token Metaspace "
        "BPE trained on the train chats"
    )
    with embedded_service(data_dir, port=port, log_path=data_dir / "service.log") as client:
        files = upload(client, chats["train"], chats["eval"], chats["test"])
        jobs = run_demo(client, files, scale, data_dir / "students", console)
    summary = summarize(jobs, scale)
    summary["data"] = {
        "train_rows": splits.train.rows,
        "eval_rows": splits.eval.rows,
        "test_rows": splits.test.rows,
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 train tweets and one epoch per job")
    parser.add_argument("--top-k", type=int, help="teacher log-probabilities stored per token (default 64)")
    parser.add_argument("--gkd-beta", type=float, help="GKD's beta: 0 forward KL (the default), 1 reverse KL")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    scale = QUICK if args.quick else Scale()
    if args.top_k is not None:
        scale = replace(scale, top_k=args.top_k)
    if args.gkd_beta is not None:
        scale = replace(scale, gkd_beta=args.gkd_beta)
    out = args.out or RESULTS / ("lm_demo_quick.json" if args.quick else "lm_demo.json")
    data_dir = (args.data_dir or Path("var/lm-demo-quick" if args.quick else "var/lm-demo")).resolve()
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    summary = run(data_dir, scale, port=args.port, console=console)
    summary["command"] = " ".join(["scripts/demo --lm", *sys.argv[1:]])
    console.print(format_table(summary))
    write_result(summary, out, console=console)


if __name__ == "__main__":
    main()
