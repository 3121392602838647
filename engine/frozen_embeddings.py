"""`training.freeze_embeddings`: the student's token embeddings kept as copied, out of the optimiser."""

from transformers import PreTrainedModel


def freeze_input_embeddings(student: PreTrainedModel) -> int:
    """Stop the token-embedding matrix training; the number of parameters it holds.

    Its backward is then skipped too: a dense gradient the size of the vocabulary is never built.
    """
    weight = student.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()
