"""The red wine loader behaves like scikit-learn's fetchers: verified, cached, clear errors."""

import shutil
import urllib.error

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from dlcourse import data


def test_loads_verified_copy(data_home):
    frame = data.load_red_wine(data_home, download_if_missing=False)
    assert frame.shape == (1599, 12)
    assert "quality" in frame.columns


def test_corrupt_file_is_refused_with_a_fix(tmp_path, data_home):
    (tmp_path / "winequality-red.csv").write_text("fixed acidity;quality\n1;2\n")
    with pytest.raises(data.DataError) as err:
        data.load_red_wine(tmp_path)
    english, spanish = err.value.text("en"), err.value.text("es")
    assert "corrupt" in english and "delete it" in english
    assert "está dañado" in spanish and "bórralo" in spanish and "delete" not in spanish


def test_a_data_error_speaks_the_course_language(tmp_path, monkeypatch):
    """A student reads the error under the setup cell: in the course's language."""
    for language, words in (("es", "no está en"), ("en", "is not in")):
        monkeypatch.setenv("DLCOURSE_LANGUAGE", language)
        with pytest.raises(data.DataError) as err:
            data.fetch_file(data.RED_WINE, tmp_path / "none", download_if_missing=False)
        assert words in str(err.value), str(err.value)


def test_missing_file_without_download_says_how_to_fix(tmp_path):
    with pytest.raises(data.DataError) as err:
        data.load_red_wine(tmp_path / "empty", download_if_missing=False)
    assert "COURSE_DATA_HOME" in err.value.text("en") and "Fix:" in err.value.text("en")
    assert "Cómo arreglarlo" in err.value.text("es")


def test_offline_download_gives_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setenv("DLCOURSE_LANGUAGE", "en")  # str(): the course language
    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(data.DataError) as err:
        data.load_red_wine(tmp_path / "home")
    message = str(err.value)
    assert "Could not download" in message and "network unreachable" in message
    assert data.RED_WINE.sha256 in message  # tells what a verified copy is
    assert not (tmp_path / "home" / "winequality-red.csv").exists()


def test_download_is_verified_and_cached(tmp_path, monkeypatch, data_home):
    """A download goes through the sha256 check; a wrong payload is never cached."""
    source = data_home / "winequality-red.csv"

    class Response:
        def __init__(self, payload):
            self.payload = payload

        def read(self, n=-1):
            chunk, self.payload = (
                self.payload[:n] if n > 0 else self.payload,
                (self.payload[n:] if n > 0 else b""),
            )
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: Response(b"tampered"))
    with pytest.raises(data.DataError) as err:
        data.fetch_file(data.RED_WINE, tmp_path)
    assert "checksum mismatch" in err.value.text("en")
    assert "la suma de comprobación no coincide" in err.value.text("es")
    assert not (tmp_path / "winequality-red.csv").exists()

    monkeypatch.setattr(
        data.urllib.request, "urlopen", lambda url, timeout: Response(source.read_bytes())
    )
    path = data.fetch_file(data.RED_WINE, tmp_path)
    assert path.read_bytes() == source.read_bytes()


def test_data_home_from_environment(monkeypatch, tmp_path, data_home):
    shutil.copy(data_home / "winequality-red.csv", tmp_path)
    monkeypatch.setenv("COURSE_DATA_HOME", str(tmp_path))
    assert data.get_data_home() == tmp_path
    assert data.load_red_wine().shape == (1599, 12)


def test_split_is_the_lessons_train_test_split(data_home):
    frame = data.load_red_wine(data_home)
    X = frame.drop(columns=["quality"])
    y = frame["quality"]
    X_train, X_valid, _, _ = train_test_split(X, y, test_size=0.2, random_state=3)
    train, valid = data.split_indices()
    assert np.array_equal(X_train.index.to_numpy(), train)
    assert np.array_equal(X_valid.index.to_numpy(), valid)
    assert data.n_train() == len(train) == 1279


def test_scaling_uses_training_statistics_only(data_home):
    X_train, X_valid, y_train, y_valid = data.lesson4_scaled_split(data.load_red_wine(data_home))
    assert X_train.min().min() == 0 and X_train.max().max() == 1
    assert y_train.min() == 0 and y_train.max() == 1
    # validation values may leave [0, 1]: they were scaled with the training min and max
    raw = data.lesson4_split(data.load_red_wine(data_home))
    low, high = raw[0].min(), raw[0].max()
    expected = (raw[1] - low) / (high - low)
    assert np.allclose(X_valid.to_numpy(), expected.to_numpy())


def test_the_checkers_arrays_are_the_lessons_bit_for_bit(data_home):
    """course_arrays reads with NumPy and the stored split (no pandas, no scikit-learn in the
    grader's path): the same values as pandas' reader and train_test_split give."""
    import numpy as np

    from dlcourse import data

    arrays = data.course_arrays(str(data_home))
    train, valid = data.split_indices()  # scikit-learn itself
    assert np.array_equal(arrays["train_index"], train)
    assert np.array_equal(arrays["valid_index"], valid)
    frame = data.load_red_wine(data_home)  # pandas itself
    x_train, x_valid, y_train, y_valid = data.lesson4_scaled_split(frame)
    assert np.array_equal(arrays["raw_X"], frame.drop(columns=[data.TARGET]).to_numpy())
    assert np.array_equal(arrays["raw_y"], frame[data.TARGET].to_numpy(dtype=np.float64))
    for name, expected in (
        ("X_train", x_train),
        ("X_valid", x_valid),
        ("y_train", y_train),
        ("y_valid", y_valid),
    ):
        assert np.array_equal(arrays[name], expected.to_numpy(dtype=np.float64)), name
        assert not arrays[name].flags.writeable


def test_the_checkers_arrays_import_neither_pandas_nor_sklearn(data_home):
    import subprocess
    import sys

    program = (
        "import sys\n"
        "from dlcourse.data import course_arrays\n"
        f"course_arrays({str(data_home)!r})\n"
        "print('pandas' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("n_rows", [1599, 100, 37])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 7, 42, 123, 2024, 99999])
def test_shuffled_split_is_train_test_split(n_rows, seed):
    """The checkers look for a student's own random_state with NumPy alone: the same rows, in
    the same order, as scikit-learn's train_test_split."""
    import numpy as np

    from dlcourse import data

    train, valid = data.shuffled_split(n_rows, test_size=0.2, random_state=seed)
    expected_train, expected_valid = train_test_split(
        np.arange(n_rows), test_size=0.2, random_state=seed
    )
    assert np.array_equal(train, expected_train)
    assert np.array_equal(valid, expected_valid)


def test_no_checker_imports_scikit_learn_or_pandas():
    """A regrade's fixed cost: scikit-learn alone is 2.5 s of imports in a grader process."""
    from tests.conftest import ROOT

    sources = [
        *(ROOT / "autograder" / "checkers").glob("*.py"),
        *(ROOT / "student" / "src" / "dlcourse" / "rules").glob("*.py"),
    ]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for module in ("sklearn", "pandas"):
            assert f"import {module}" not in text and f"from {module}" not in text, (path, module)
