"""Prediction uses exactly the training preprocessing; grey/colour mismatch and --invert auto work."""
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_class_folder, make_image
from sortnet.data.decode import decode_image
from sortnet.data.preprocess import Preprocessing
from sortnet.data.sources import load_data
from sortnet.data.invert import border_is_light
from sortnet.infer.predictor import Predictor
from sortnet.modelfile import load_model, save_model
from sortnet.modelmeta import ModelMeta
from sortnet.models.registry import create_model


def _predictor(tmp_path, prep: Preprocessing, classes=("a", "b")) -> Predictor:
    torch.manual_seed(0)
    model = create_model("cnn-small", prep.channels, len(classes), prep.img_size, prep.mean, prep.std)
    path = save_model(tmp_path / "m.safetensors", model, ModelMeta(classes=list(classes), arch="cnn-small",
                                                                   preprocessing=prep))
    m, meta = load_model(path)
    return Predictor(m, meta, runtime="torch")


def test_train_time_and_predict_time_tensors_are_identical(tmp_path):
    # odd sizes and a non-square image exercise the resize + centre-crop path
    data = make_class_folder(tmp_path, classes=2, per_class=6, size=40)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(
        data / "class_0" / "wide.png")
    bundle = load_data(str(data), img_size=24, val_fraction=0.0, progress=False)
    predictor = _predictor(tmp_path, bundle.preprocessing)
    assert bundle.train.paths is not None
    for row, path in enumerate(bundle.train.paths):
        arr, inverted = predictor.preprocess(decode_image(path))
        assert not inverted
        assert np.array_equal(arr, np.asarray(bundle.train.images[row])), path


def test_colour_photo_to_grey_model_and_grey_to_colour(tmp_path):
    grey = _predictor(tmp_path, Preprocessing(16, 1, (0.5,), (0.25,)))
    colour = make_image(1, 16, "RGB")
    preds = grey.predict_images([colour, colour.convert("L")])
    assert all(len(p.top) == 2 for p in preds)
    arr, _ = grey.preprocess(colour)
    assert arr.shape == (1, 16, 16)
    rgb = _predictor(tmp_path, Preprocessing(16, 3, (0.5,) * 3, (0.25,) * 3))
    arr, _ = rgb.preprocess(colour.convert("L"))
    assert arr.shape == (3, 16, 16) and np.array_equal(arr[0], arr[1])


def test_invert_auto_for_dark_ink_on_white(tmp_path):
    prep = Preprocessing(16, 1, (0.1,), (0.3,), background="dark")  # MNIST style: light digit on black
    predictor = _predictor(tmp_path, prep)
    paper = np.full((16, 16), 240, np.uint8)
    paper[4:12, 7:9] = 20  # a dark stroke on white paper
    arr, inverted = predictor.preprocess(Image.fromarray(paper))
    assert inverted and arr[0, 0, 0] == 255 - 240 and arr[0, 5, 7] == 255 - 20
    arr, inverted = predictor.preprocess(Image.fromarray(255 - paper))  # already light-on-dark
    assert not inverted
    never = Predictor(predictor.model, predictor.meta, invert="never", runtime="torch")
    assert not never.preprocess(Image.fromarray(paper))[1]
    assert border_is_light(np.full((1, 4, 4), 200, np.uint8))


def test_bad_invert_choice(tmp_path):
    p = _predictor(tmp_path, Preprocessing(16, 1))
    with pytest.raises(ValueError, match="invert"):
        Predictor(p.model, p.meta, invert="sometimes")
