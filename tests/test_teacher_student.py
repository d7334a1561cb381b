import torch

from trainwise.tasks import get_task


def test_teacher_student_is_learnable_and_bounded_by_the_teacher():
    task = get_task("teacher-student", n_train=4096, n_test=1024)
    model = task.make_model(seed=0)
    batch = next(task.batches(8, seed=0))
    assert task.loss_fn(model, batch).shape == (8,)
    start = task.eval_loss(model)
    assert abs(start - torch.log(torch.tensor(8.0))) < 0.3  # untrained: near log(classes)
    opt = task.make_optimizer(model, lr=3e-3)
    stream = task.batches(64, seed=1)
    for _ in range(150):
        loss = task.loss_fn(model, next(stream)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = task.eval_loss(model)
    assert end < start - 0.3
    # labels are sampled from the teacher: no student beats the teacher's conditional entropy (up to test noise)
    assert end > task.bayes_loss() - 0.05
    assert task.describe()["task"] == "teacher-student"
