"""Deep mutual learning: distinct peers, all trained, peer 0 exported."""

import copy

import torch
from engine_helpers import loss_fell, train_losses
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from distillery.jobspec.methods import MutualMethod
from engine.methods.mutual import MutualDistillation


def test_mutual_learning_needs_no_teacher():
    assert MutualDistillation.needs_teacher is False


def test_peers_differ_even_from_identical_pretrained_copies(make_bert, context):
    student = make_bert()
    seeds = []

    def same_pretrained_model(seed):
        seeds.append(seed)
        return copy.deepcopy(student)

    method = MutualDistillation(
        MutualMethod(num_peers=3), context(student, new_student=same_pretrained_model)
    )
    peers = method.all_peers()
    assert len(peers) == 3 and peers[0] is student
    assert len(set(seeds)) == 2
    heads = [peer.classifier.weight for peer in peers]
    for first in range(3):
        for second in range(first + 1, 3):
            assert not torch.equal(heads[first], heads[second])
    assert any(name.startswith("peers.1.") for name in method.state_dict())


def test_building_peers_keeps_the_global_random_state(make_bert, context):
    student = make_bert()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)

    def reseeding_factory(seed):
        torch.manual_seed(seed)
        return copy.deepcopy(student)

    MutualDistillation(MutualMethod(), context(student, new_student=reseeding_factory))
    torch.testing.assert_close(torch.rand(3), expected)


def test_every_peer_gets_gradients_and_loss_falls(make_bert, context, cls_batch, train):
    method = MutualDistillation(MutualMethod(num_peers=3), context(make_bert()))
    loss, terms = method.training_loss(cls_batch)
    assert terms["kl"] > 0
    loss.backward()
    for peer in method.all_peers():
        assert all(p.grad is not None for p in peer.parameters() if p.requires_grad)
        assert peer.classifier.weight.grad.abs().sum() > 0
    losses = train(method, cls_batch, steps=8)
    assert losses[-1] < losses[0]
    assert method.export_model() is method.student


def test_mutual_learning_trains_causal_lm_peers(make_gpt2, context, lm_batch, train):
    method = MutualDistillation(
        MutualMethod(temperature=2.0),
        context(make_gpt2(), task="causal_lm", new_student=lambda seed: make_gpt2(seed=seed)),
    )
    assert not torch.equal(method.student.transformer.wte.weight, method.peers[0].transformer.wte.weight)
    losses = train(method, lm_batch, steps=8)
    assert losses[-1] < losses[0]


def test_mutual_job_trains_pretrained_peers_and_saves_peer_zero(run_spec, fast_training, tmp_path):
    spec = {
        "student": {"init": "pretrained", "model": {"path": "bert-sentiment"}},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "mutual", "num_peers": 2},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    assert (
        AutoModelForSequenceClassification.from_pretrained(result.student_dir).config.num_hidden_layers == 4
    )


def test_mutual_job_trains_causal_lm_peers(run_spec, fast_training, tmp_path):
    spec = {
        "task": "causal_lm",
        "student": {"init": "config", "model": {"path": "gpt2-counting"}, "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {"type": "mutual", "temperature": 2.0},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    assert AutoModelForCausalLM.from_pretrained(result.student_dir).config.num_hidden_layers == 2
