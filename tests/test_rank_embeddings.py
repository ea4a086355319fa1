from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from click.testing import CliRunner
from rank_papers import PAPERS
from sqlalchemy import select

from digest.cli import main
from digest.db import Database
from digest.models import Paper, PaperEmbedding
from digest.rank import embeddings, encoder

needs_model = pytest.mark.skipif(not encoder.installed(), reason="needs the `semantic` extra")


def _add_papers(db: Database) -> list[int]:
    with db.session() as session:
        papers = [
            Paper(key=f"k{i}", title_key=f"t{i}", title=t, abstract=a, first_seen_at=dt.datetime(2025, 6, 1))
            for i, (t, a) in enumerate(PAPERS)
        ]
        session.add_all(papers)
        session.flush()
        return [p.id for p in papers]


def test_a_vector_is_stored_as_float16_and_read_back_as_float32() -> None:
    vector = np.linspace(-0.3, 0.3, encoder.DIMENSION).astype(np.float32)
    blob = embeddings.encode(vector)
    assert len(blob) == 2 * encoder.DIMENSION
    assert np.allclose(embeddings.decode([blob])[0], vector, atol=1e-3)
    assert embeddings.decode([]).shape == (0, encoder.DIMENSION)


@needs_model
def test_every_paper_is_embedded_once_newest_first(db: Database) -> None:
    ids = _add_papers(db)
    seen: list[int] = []
    assert embeddings.embed_pending(db, encoder.encoder(), limit=5, progress=seen.append) == 5
    with db.session() as session:
        assert set(embeddings.stored(session, ids)) == set(ids[-5:])  # today's papers before the backfill
        assert embeddings.pending(session) == len(ids) - 5
    assert embeddings.embed_pending(db, encoder.encoder(), progress=seen.append) == len(ids) - 5
    assert sum(seen) == len(ids) and embeddings.embed_pending(db, encoder.encoder()) == 0
    with db.session() as session:
        found = embeddings.stored(session, ids)
    expected = encoder.encoder().encode([f"{PAPERS[0][0]}\n{PAPERS[0][1]}"])[0]
    assert np.allclose(found[ids[0]], expected, atol=2e-3)


@needs_model
def test_another_models_vector_is_replaced_and_never_read(db: Database) -> None:
    ids = _add_papers(db)
    with db.session() as session:
        session.add(PaperEmbedding(paper_id=ids[0], model="another", vector=b"\0" * 8))
    with db.session() as session:
        assert embeddings.stored(session, [ids[0]]) == {} and embeddings.pending(session) == len(ids)
    embeddings.embed_pending(db, encoder.encoder())
    with db.session() as session:
        models = set(session.scalars(select(PaperEmbedding.model)))
    assert models == {encoder.MODEL_ID}


@needs_model
def test_digest_embed_backfills_the_stored_papers(db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    ids = _add_papers(db)
    result = CliRunner().invoke(main, ["embed"], env={"DIGEST_DATA_DIR": str(settings.data_dir)})
    assert result.exit_code == 0, result.output
    assert f"embedded {len(ids)} papers" in result.output
    with db.session() as session:
        assert embeddings.pending(session) == 0


@pytest.mark.usefixtures("without_semantic")
def test_digest_embed_without_the_extra_says_how_to_install_it(db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["embed"], env={"DIGEST_DATA_DIR": str(settings.data_dir)})
    assert result.exit_code == 1
    assert "pip install 'digest[semantic]'" in result.output
