"""flat.py: a model's parameters (and gradients) as views of one buffer, and the one-call paths that use it
(the optimiser's update, adding the threads' gradients): the same values and the same bits as array by array."""
import numpy as np
import pytest

import numpy_transformer.models.gpt as gpt_module
from numpy_transformer import backend
from numpy_transformer.checkpoint import load_checkpoint, load_params, save_checkpoint
from numpy_transformer.flat import BufferFinder, gather, one_buffer, zeros_like_each
from numpy_transformer.layers.base import Layer
from numpy_transformer.models import GPT, GPTConfig
from numpy_transformer.objectives import CausalLM
from numpy_transformer.optim import AdamW, Adam
from numpy_transformer.parallel import DataParallel

BACKENDS = ["numpy"] + (["numba"] if backend.numba_available() else [])


def config(dtype="float64"):
    return GPTConfig(vocab_size=11, max_len=9, width=12, num_heads=3, num_layers=2, dtype=dtype, seed=3)


def gpt_array_by_array(dtype="float64", monkeypatch=None):
    """The same GPT (same seed, same values) with every array on its own, as before flat.py."""
    with monkeypatch.context() as patch:                # undone on leaving, and nothing else the test patched
        patch.setattr(gpt_module, "gather_model", lambda model: model)
        return GPT(config(dtype))


def test_a_built_model_keeps_its_values_and_shapes_in_one_buffer_per_kind(monkeypatch, rng):
    flat, separate = GPT(config()), gpt_array_by_array(monkeypatch=monkeypatch)
    params, grads = flat.parameters(), flat.grads()
    buffer = one_buffer(params.values())
    assert buffer is not None and buffer.size == sum(p.size for p in params.values())
    assert one_buffer(grads.values()) is not None and one_buffer(grads.values()) is not buffer
    assert one_buffer(separate.parameters().values()) is None
    for name, value in separate.parameters().items():
        assert params[name].shape == value.shape and params[name].dtype == value.dtype
        np.testing.assert_array_equal(params[name], value, err_msg=name)
    ids = rng.integers(0, 11, (2, 9))
    np.testing.assert_array_equal(flat.forward(ids)[0], separate.forward(ids)[0])   # same model, same logits
    flat.blocks[0].ffn.sublayer.fc1.params["weight"][0, 0] = 7.0  # a view: writing it writes the buffer
    assert 7.0 in buffer


def test_one_buffer_accepts_only_exact_consecutive_pieces():
    buffer = np.arange(10.0)
    a, b, c = buffer[:4].reshape(2, 2), buffer[4:7], buffer[7:]
    assert one_buffer([a, b, c]) is buffer
    assert one_buffer([b, a, c]) is None                # out of order
    assert one_buffer([a, c]) is None                   # a gap
    assert one_buffer([a, b]) is None                   # the buffer goes on after them
    assert one_buffer([a, b, np.arange(3.0)]) is None   # one of them lives elsewhere
    assert one_buffer([buffer[::2]]) is None            # strided
    assert one_buffer([]) is None and one_buffer([np.zeros(3)]) is None   # nothing, or an array of its own
    find = BufferFinder()
    assert find([a, b, c]) is buffer and find([a, b, c]) is buffer
    assert find([a, b, np.arange(3.0)]) is None         # other arrays: looked at again


def test_gather_changes_nothing_it_cannot_move_safely():
    class Two(Layer):
        def __init__(self, first, second):
            super().__init__()
            self.add_param("first", first)
            self.add_param("second", second)
    mixed = Two(np.zeros(3), np.zeros(2, dtype=np.float32))
    assert gather(mixed) is None and one_buffer(mixed.parameters().values()) is None   # two dtypes
    shared = np.zeros(6)
    views = Two(shared[:3], shared[3:])
    assert gather(views) is None and views.params["first"].base is shared   # views of other memory stay
    same = np.ones(4)
    twice = Two(same, same)                             # one array under two names: one place, still one array
    assert gather(twice).size == 4 and twice.params["first"] is twice.params["second"]
    assert zeros_like_each({}) == {}
    moments = zeros_like_each({"a": np.ones((2, 3)), "b": np.ones(4)})
    assert one_buffer(moments.values()) is not None and not np.any(moments["a"])


@pytest.mark.skipif(not backend.numba_available(), reason="the one-call update is on the Numba backend")
@pytest.mark.parametrize("optimizer", [AdamW, Adam])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_call_update_gives_the_bits_of_the_update_array_by_array(optimizer, dtype, monkeypatch):
    """Three steps with weight decay (matrices decay, biases and norms do not) on the flat model, through the
    one-call path, and on the same model array by array: the same parameters and moments, bit for bit."""
    results = {}
    with backend.use_backend("numba"):
        for name, model in (("flat", GPT(config(dtype))), ("arrays", gpt_array_by_array(dtype, monkeypatch))):
            opt = optimizer(model, lr=1e-2, weight_decay=0.1)
            calls = []
            update_all = opt.update_all
            monkeypatch.setattr(opt, "update_all", lambda lr: calls.append(update_all(lr)) or calls[-1])
            grads_rng = np.random.default_rng(5)
            for _ in range(3):
                for grad in model.grads().values():
                    grad[...] = grads_rng.standard_normal(grad.shape)
                opt.step()
            assert calls == [name == "flat"] * 3        # which path each step took
            results[name] = {**model.parameters(), **opt.state_dict()}
    for key, value in results["arrays"].items():
        np.testing.assert_array_equal(results["flat"][key], value, err_msg=key)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_gradients_listed_in_another_order_still_meet_their_parameters(backend_name):
    """A layer whose dparams dict lists its names in another order than params (the Layer contract asks
    only for the same names): gather lays the gradients out in the parameters' order, and the one-call
    update pairs them by name, so each parameter gets its own gradient (a review found w getting b's)."""
    class Odd(Layer):
        def __init__(self):
            super().__init__()
            self.params = {"w": np.ones(3), "b": np.ones(2)}
            self.dparams = {"b": np.zeros(2), "w": np.zeros(3)}
    model = Odd()
    gather(model, "params")
    gather(model, "dparams")
    assert one_buffer(model.grads().values()) is None and one_buffer([model.dparams[n] for n in "wb"]) is not None
    optimizer = Adam(model, lr=0.1)
    model.dparams["w"][...] = 1.0
    with backend.use_backend(backend_name):
        optimizer.step()
    np.testing.assert_allclose(model.params["w"], 0.9)   # Adam's first step moves by lr against the gradient's sign
    np.testing.assert_array_equal(model.params["b"], 1.0)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_replaced_parameter_ends_the_sharing_and_training_goes_on_array_by_array(backend_name, monkeypatch):
    """Fine-tuning may put a new array in place of one (a new head, say): the update then goes array by
    array, on the model as it is now, and matches a model built array by array from the start."""
    results = {}
    with backend.use_backend(backend_name):
        for name, model in (("flat", GPT(config())), ("arrays", gpt_array_by_array(monkeypatch=monkeypatch))):
            layer = model.blocks[1].ffn.sublayer.fc2
            layer.params["weight"] = layer.params["weight"].copy()     # its own array now
            opt = AdamW(model, lr=1e-2, weight_decay=0.1)
            assert not opt.update_all(1e-2)
            for grad in model.grads().values():
                grad[...] = 0.5
            opt.step()
            results[name] = model.parameters()
    for key, value in results["arrays"].items():
        np.testing.assert_array_equal(results["flat"][key], value, err_msg=key)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_threads_gradients_added_in_one_call_give_the_bits_of_array_by_array(backend_name, monkeypatch):
    batch = {"ids": np.random.default_rng(0).integers(0, 11, (5, 9)),
             "targets": np.random.default_rng(1).integers(0, 11, (5, 9))}
    grads = {}
    with backend.use_backend(backend_name):
        for name, model in (("flat", GPT(config())), ("arrays", gpt_array_by_array(monkeypatch=monkeypatch))):
            with DataParallel(model, 2) as parallel:
                model.zero_grad()
                parallel.loss_and_backward(lambda m, b, rng: CausalLM.loss(None, m, b, rng), batch)
                replica_grads = [replica.grads().values() for replica in parallel.replicas]
                assert all(one_buffer(values) is not None for values in replica_grads)   # replicas gather theirs
            grads[name] = model.grads()
    for key, value in grads["arrays"].items():
        np.testing.assert_array_equal(grads["flat"][key], value, err_msg=key)


def test_loading_a_checkpoint_keeps_the_buffer(tmp_path):
    """Checkpoints are loaded in place, so a loaded model still has its parameters in one buffer."""
    model, other = GPT(config()), GPT(GPTConfig(**{**config().__dict__, "seed": 4}))
    save_checkpoint(tmp_path / "model.npz", other)
    load_params(model, load_checkpoint(tmp_path / "model.npz").params)
    assert one_buffer(model.parameters().values()) is not None
    for name, value in other.parameters().items():
        np.testing.assert_array_equal(model.parameters()[name], value)
