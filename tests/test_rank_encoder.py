from __future__ import annotations

import numpy as np
import pytest

from digest.rank import encoder

pytestmark = pytest.mark.skipif(not encoder.installed(), reason="needs the `semantic` extra")


def test_the_encoder_gives_one_unit_row_per_text() -> None:
    vectors = encoder.encoder().encode(["Robot grasping from point clouds", "Sound event detection", ""])
    assert vectors.shape == (3, encoder.DIMENSION) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_texts_on_one_topic_are_closer_than_texts_on_two() -> None:
    speech, audio, robots = encoder.encoder().encode(
        ["Neural speech synthesis", "Music source separation from raw audio", "Legged robot locomotion"]
    )
    assert speech @ audio > speech @ robots


def test_a_texts_vector_does_not_depend_on_the_texts_embedded_with_it() -> None:
    model = encoder.encoder()
    texts = ["Dense passage retrieval for open-domain questions " * 5, "Lattice signatures", "Audio"]
    together = model.encode(texts)
    alone = np.vstack([model.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)


def test_a_long_text_is_cut_at_the_token_limit() -> None:
    model = encoder.encoder()
    head = "robots " * encoder.MAX_TOKENS
    assert np.allclose(model.encode([head]), model.encode([head + "cryptography " * 50]), atol=1e-5)


def test_the_encoder_is_loaded_once_per_process() -> None:
    assert encoder.encoder() is encoder.encoder()


@pytest.mark.usefixtures("without_semantic")
def test_without_the_extra_there_is_no_encoder() -> None:
    assert encoder.encoder() is None and not encoder.installed()
