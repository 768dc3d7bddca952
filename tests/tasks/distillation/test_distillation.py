"""Distillation loss against a NumPy reference (value), finite differences and torch (gradient), and the wrapper."""
import numpy as np
import pytest

from minitransfer import Tensor, seeding
from minitransfer.models import DistilBertForSequenceClassification, ModelConfig
from minitransfer.tasks.distillation.loss import DistillationModel, distillation_loss
from tests.gradcheck import check_gradients


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def reference(student, teacher, labels, temperature, alpha):
    log_q, log_p = log_softmax(student / temperature), log_softmax(teacher / temperature)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(-1).mean()
    ce = -log_softmax(student)[np.arange(len(labels)), labels].mean()
    return alpha * temperature**2 * kl + (1 - alpha) * ce


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 3)) * 2, rng.standard_normal((6, 3)) * 2, rng.integers(0, 3, 6)


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (2.0, 0.5), (4.0, 0.9), (3.0, 1.0), (2.0, 0.0)])
def test_value_matches_numpy(logits, temperature, alpha):
    student, teacher, labels = logits
    loss = distillation_loss(Tensor(student), teacher, labels, temperature, alpha)
    np.testing.assert_allclose(loss.item(), reference(student, teacher, labels, temperature, alpha), rtol=1e-10)


def test_soft_loss_is_zero_when_the_student_copies_the_teacher(logits):
    _, teacher, labels = logits
    assert abs(distillation_loss(Tensor(teacher.copy()), teacher, labels, 2.0, 1.0).item()) < 1e-12


@pytest.mark.parametrize("temperature,alpha", [(2.0, 0.5), (5.0, 0.7)])
def test_gradient_matches_finite_differences(logits, temperature, alpha):
    student, teacher, labels = logits
    check_gradients(lambda s: distillation_loss(s, teacher, labels, temperature, alpha), [student])


def test_matches_torch_kl_div(logits):
    torch = pytest.importorskip("torch")
    student, teacher, labels = logits
    temperature, alpha = 3.0, 0.6
    s = torch.tensor(student, requires_grad=True)
    t = torch.tensor(teacher)
    soft = torch.nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(s / temperature, -1),
                                                      torch.softmax(t / temperature, -1))
    expected = alpha * temperature**2 * soft + (1 - alpha) * torch.nn.functional.cross_entropy(s, torch.tensor(labels))
    expected.backward()
    ours = Tensor(student.copy(), requires_grad=True)
    loss = distillation_loss(ours, teacher, labels, temperature, alpha)
    loss.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-10)
    np.testing.assert_allclose(ours.grad.numpy(), s.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_wrapper_uses_the_teacher_only_when_given():
    seeding.manual_seed(0)
    config = ModelConfig("distilbert", vocab_size=100, dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                         max_position_embeddings=32, num_labels=2)
    student = DistilBertForSequenceClassification(config).eval()
    wrapped = DistillationModel(student, temperature=2.0, alpha=0.5).eval()
    ids = np.random.default_rng(0).integers(5, 100, (4, 9))
    labels = np.array([0, 1, 1, 0])
    plain = student(ids, labels=labels)
    np.testing.assert_allclose(wrapped(ids, labels=labels).loss.item(), plain.loss.item())
    teacher = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    expected = reference(plain.logits.numpy().astype(np.float64), teacher.astype(np.float64), labels, 2.0, 0.5)
    np.testing.assert_allclose(wrapped(ids, labels=labels, teacher_logits=teacher).loss.item(), expected, rtol=1e-5)
    assert set(wrapped.state_dict()) == set(student.state_dict())
